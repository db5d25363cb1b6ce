//! Change notifications as the store records them, and their HubSpot webhook form
//! (FACTS 2.11): one [`Change`] per creation, changed property, deletion, merge and
//! association direction.
//!
//! The store appends to its [`Outbox`] only while webhooks are configured, so a sandbox
//! without a subscriber keeps no journal.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::actor::Actor;
use super::object_type::ObjectType;

/// What happened to a record.
#[derive(Debug, Clone)]
pub(crate) enum What {
    Creation,
    Property {
        name: String,
        value: String,
    },
    /// `flag` is the `changeFlag`: `DELETED` for archive and GDPR delete, `MERGED` for the
    /// record a merge absorbed.
    Deletion {
        flag: &'static str,
    },
    PrivacyDeletion,
    /// An archived record brought back (HubSpot's UI restore, within 90 days).
    Restore,
    Merge {
        merged: Vec<u64>,
        new_id: u64,
        moved: usize,
    },
    Association {
        to: (ObjectType, u64),
        primary: bool,
        removed: bool,
    },
}

/// One recorded change of one record.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub object: ObjectType,
    pub id: u64,
    pub what: What,
}

/// Changes waiting for the webhook dispatcher.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub enabled: bool,
    pub changes: Vec<Change>,
}

impl Outbox {
    pub fn push(&mut self, change: Change) {
        if self.enabled {
            self.changes.push(change);
        }
    }
}

/// Portal-wide fields of every event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    pub portal_id: u64,
    pub app_id: u64,
}

impl What {
    fn suffix(&self) -> &'static str {
        match self {
            What::Creation => "creation",
            What::Property { .. } => "propertyChange",
            What::Deletion { .. } => "deletion",
            What::PrivacyDeletion => "privacyDeletion",
            What::Restore => "restore",
            What::Merge { .. } => "merge",
            What::Association { .. } => "associationChange",
        }
    }
}

/// A stable subscription id per subscription type, as if the app had one subscription for
/// each (HubSpot numbers them per app).
fn subscription_id(object: ObjectType, suffix: &str) -> u64 {
    let kind = [
        "creation",
        "propertyChange",
        "deletion",
        "privacyDeletion",
        "merge",
        "associationChange",
        "restore",
    ]
    .iter()
    .position(|s| *s == suffix)
    .unwrap_or(0) as u64;
    1000 + object.index() as u64 * 10 + kind
}

impl Change {
    /// `contact.creation`, `company.propertyChange`, …
    pub fn subscription_type(&self) -> String {
        format!("{}.{}", self.object.singular(), self.what.suffix())
    }

    /// The webhook event (`attemptNumber` 0; the dispatcher bumps it on retries).
    pub fn to_event(&self, event_id: u64, context: Context) -> Value {
        let mut event = Map::new();
        let mut put = |key: &str, value: Value| {
            event.insert(key.to_owned(), value);
        };
        put("eventId", json!(event_id));
        put(
            "subscriptionId",
            json!(subscription_id(self.object, self.what.suffix())),
        );
        put("portalId", json!(context.portal_id));
        put("appId", json!(context.app_id));
        put("occurredAt", json!(self.at.timestamp_millis()));
        put("subscriptionType", json!(self.subscription_type()));
        put("attemptNumber", json!(0));
        put("objectId", json!(self.id));
        put("changeSource", json!(self.actor.change_source()));
        put("sourceId", json!(self.actor.source_id(context.app_id)));
        match &self.what {
            What::Creation => put("changeFlag", json!("NEW")),
            What::Property { name, value } => {
                put("propertyName", json!(name));
                put("propertyValue", json!(value));
            }
            What::Deletion { flag } => put("changeFlag", json!(flag)),
            What::PrivacyDeletion => put("changeFlag", json!("DELETED")),
            What::Restore => put("changeFlag", json!("RESTORED")),
            What::Merge {
                merged,
                new_id,
                moved,
            } => {
                put("changeFlag", json!("MERGED"));
                put("primaryObjectId", json!(self.id));
                put("mergedObjectIds", json!(merged));
                put("newObjectId", json!(new_id));
                put("numberOfPropertiesMoved", json!(moved));
            }
            What::Association {
                to,
                primary,
                removed,
            } => {
                put(
                    "associationType",
                    json!(format!(
                        "{}_TO_{}",
                        self.object.singular().to_uppercase(),
                        to.0.singular().to_uppercase()
                    )),
                );
                put("fromObjectId", json!(self.id));
                put("toObjectId", json!(to.1));
                put("associationRemoved", json!(removed));
                put("isPrimaryAssociation", json!(primary));
            }
        }
        Value::Object(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_change_carries_name_value_and_source() {
        let change = Change {
            at: DateTime::<Utc>::UNIX_EPOCH,
            actor: Actor::User(12345),
            object: ObjectType::Contacts,
            id: 123,
            what: What::Property {
                name: "email".into(),
                value: "a@b.com".into(),
            },
        };
        let event = change.to_event(
            1,
            Context {
                portal_id: 62515,
                app_id: 54321,
            },
        );
        assert_eq!(event["subscriptionType"], "contact.propertyChange");
        assert_eq!(event["propertyName"], "email");
        assert_eq!(event["propertyValue"], "a@b.com");
        assert_eq!(event["changeSource"], "CRM_UI");
        assert_eq!(event["sourceId"], "userId:12345");
        assert_eq!(event["portalId"], 62515);
    }
}
