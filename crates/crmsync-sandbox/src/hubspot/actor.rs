//! Who made a change: the integration itself (the configured token) or "another user"
//! (one of `SandboxConfig::other_tokens`), so two-way sync can tell its own echoes from
//! edits made in HubSpot's UI (FACTS 2.11 `changeSource`/`sourceId`).
//!
//! The gate authenticates a request and runs its handler inside [`scope`]; store mutations
//! read the actor with [`current`] instead of threading it through every handler. Outside a
//! request (tests, persistence) the actor is the integration.

use std::future::Future;

use serde::{Deserialize, Serialize};

/// The author of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Actor {
    /// The app the sandbox's token belongs to.
    Integration,
    /// A HubSpot user editing through the UI, by user id.
    User(u64),
}

tokio::task_local! {
    static ACTOR: Actor;
}

/// The actor of the request being handled on this task.
pub(crate) fn current() -> Actor {
    ACTOR.try_with(|actor| *actor).unwrap_or(Actor::Integration)
}

/// Runs `future` with `actor` as the author of every change it makes.
pub(crate) async fn scope<F: Future>(actor: Actor, future: F) -> F::Output {
    ACTOR.scope(actor, future).await
}

impl Actor {
    /// Webhook `changeSource` and history `sourceType`.
    pub fn change_source(self) -> &'static str {
        match self {
            Actor::Integration => "INTEGRATION",
            Actor::User(_) => "CRM_UI",
        }
    }

    /// Webhook and history `sourceId`: the app id for the integration, `userId:N` for a user.
    pub fn source_id(self, app_id: u64) -> String {
        match self {
            Actor::Integration => app_id.to_string(),
            Actor::User(id) => format!("userId:{id}"),
        }
    }

    pub fn user_id(self) -> Option<u64> {
        match self {
            Actor::Integration => None,
            Actor::User(id) => Some(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scope_sets_the_actor_for_the_future_only() {
        assert_eq!(current(), Actor::Integration);
        let inside = scope(Actor::User(7), async { current() }).await;
        assert_eq!(inside, Actor::User(7));
        assert_eq!(Actor::User(7).source_id(1), "userId:7");
        assert_eq!(Actor::Integration.source_id(54321), "54321");
        assert_eq!(current(), Actor::Integration);
    }
}
