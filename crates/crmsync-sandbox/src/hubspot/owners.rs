//! `/crm/v3/owners`: the portal's owners (the users records are assigned to), paged and
//! filtered by e-mail, and one owner by `id` or `userId`; the admin route
//! `POST /_sandbox/owners` adds one. A new portal has two seeded owners.
//!
//! Invariants: owner ids and user ids are unique; `hubspot_owner_id` on a record only ever
//! holds the id of an active (not archived) owner (checked in `Store::validate`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, Params};
use super::record::iso;
use super::state::AppState;

/// Page size limits of `GET /crm/v3/owners` (default 100, HubSpot's spec; at most 500).
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// A team an owner belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Team {
    pub id: String,
    pub name: String,
    pub primary: bool,
}

/// `PublicOwner`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub user_id: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived: bool,
    pub teams: Vec<Team>,
}

impl Owner {
    pub fn to_json(&self) -> Value {
        let teams: Vec<Value> = self
            .teams
            .iter()
            .map(|t| json!({"id": t.id, "name": t.name, "primary": t.primary}))
            .collect();
        json!({
            "id": self.id.to_string(),
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            // HubSpot reports no `userId` for an archived owner, only `userIdIncludingInactive`.
            "userId": if self.archived { Value::Null } else { json!(self.user_id) },
            "userIdIncludingInactive": self.user_id,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": self.archived,
            "teams": teams,
        })
    }
}

/// The owners a new portal has: ids and user ids as long as HubSpot's.
pub(crate) fn seeded() -> Vec<Owner> {
    let at = DateTime::parse_from_rfc3339("2020-01-01T00:00:00.000Z")
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let sales = Team {
        id: "5001".to_owned(),
        name: "Sales".to_owned(),
        primary: true,
    };
    vec![
        Owner {
            id: 70_000_001,
            email: "ada.owner@crmsync.local".to_owned(),
            first_name: "Ada".to_owned(),
            last_name: "Owner".to_owned(),
            user_id: 9_000_001,
            created_at: at,
            updated_at: at,
            archived: false,
            teams: vec![sales.clone()],
        },
        Owner {
            id: 70_000_002,
            email: "bo.seller@crmsync.local".to_owned(),
            first_name: "Bo".to_owned(),
            last_name: "Seller".to_owned(),
            user_id: 9_000_002,
            created_at: at,
            updated_at: at,
            archived: false,
            teams: vec![sales],
        },
    ]
}

/// `GET /crm/v3/owners?limit&after&email&archived`: by id ascending; `after` is the next id.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = params.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let after = match params.get("after") {
        None | Some("") => 0,
        Some(raw) => raw.parse::<u64>().map_err(|_| {
            ApiError::validation(format!(
                "after must be a cursor from paging.next.after, got {raw}"
            ))
        })?,
    };
    let archived = params.flag("archived");
    let email = params.get("email").map(str::to_lowercase);
    let store = state.store();
    let mut owners: Vec<&Owner> = store
        .owners()
        .iter()
        .filter(|o| o.id >= after && o.archived == archived)
        .filter(|o| email.as_deref().is_none_or(|e| o.email.to_lowercase() == e))
        .collect();
    owners.sort_by_key(|o| o.id);
    let mut page = owners.into_iter();
    let results: Vec<Value> = page.by_ref().take(limit).map(Owner::to_json).collect();
    let mut body = json!({ "results": results });
    if let Some(next) = page.next() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        body["paging"] = json!({"next": {
            "after": next.id.to_string(),
            "link": format!("http://{host}/crm/v3/owners?after={}", next.id),
        }});
    }
    Ok(axum::Json(body))
}

/// `GET /crm/v3/owners/{ownerId}?idProperty=id|userId&archived`.
async fn get_one(
    State(state): State<AppState>,
    Path(owner_id): Path<String>,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let by_user = match params.get("idProperty") {
        None | Some("") | Some("id") => false,
        Some("userId") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "idProperty must be id or userId, got {other}"
            )));
        }
    };
    let archived = params.flag("archived");
    let wanted = owner_id.trim().parse::<u64>().ok();
    let store = state.store();
    store
        .owners()
        .iter()
        .filter(|o| o.archived == archived)
        .find(|o| Some(if by_user { o.user_id } else { o.id }) == wanted)
        .map(|o| axum::Json(o.to_json()))
        .ok_or_else(|| ApiError::not_found(format!("Unable to find owner {owner_id}")))
}

/// `POST /_sandbox/owners` body.
#[derive(Debug, Deserialize)]
struct OwnerInput {
    #[serde(default)]
    email: String,
    #[serde(rename = "firstName", default)]
    first_name: String,
    #[serde(rename = "lastName", default)]
    last_name: String,
    #[serde(rename = "userId", default)]
    user_id: Option<u64>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    teams: Vec<TeamInput>,
}

#[derive(Debug, Deserialize)]
struct TeamInput {
    id: String,
    name: String,
    #[serde(default)]
    primary: bool,
}

/// `POST /_sandbox/owners` → 201 with the new owner (ids generated); a taken e-mail or user
/// id → 409.
async fn add(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<OwnerInput>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    if !super::values::is_valid_email(&input.email) {
        return Err(ApiError::validation(format!(
            "email must be an e-mail address, got {:?}",
            input.email
        )));
    }
    let mut store = state.store();
    let taken = store
        .owners()
        .iter()
        .any(|o| o.email.eq_ignore_ascii_case(&input.email) || Some(o.user_id) == input.user_id);
    if taken {
        return Err(ApiError::conflict(format!(
            "An owner with email {} or that userId already exists",
            input.email
        )));
    }
    let now = store.now();
    let id = store
        .owners()
        .iter()
        .map(|o| o.id)
        .max()
        .unwrap_or(70_000_000)
        + 1;
    let user_id = input.user_id.unwrap_or_else(|| {
        store
            .owners()
            .iter()
            .map(|o| o.user_id)
            .max()
            .unwrap_or(9_000_000)
            + 1
    });
    let owner = Owner {
        id,
        email: input.email,
        first_name: input.first_name,
        last_name: input.last_name,
        user_id,
        created_at: now,
        updated_at: now,
        archived: input.archived,
        teams: input
            .teams
            .into_iter()
            .map(|t| Team {
                id: t.id,
                name: t.name,
                primary: t.primary,
            })
            .collect(),
    };
    let body = owner.to_json();
    store.add_owner(owner);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/owners", get(list))
        .route("/crm/v3/owners/", get(list))
        .route("/crm/v3/owners/{owner_id}", get(get_one))
        .route("/_sandbox/owners", post(add))
}
