//! Assembles the HTTP areas into one router behind the [`gate`](super::gate) middleware.

use axum::Router;
use axum::middleware;

use super::state::AppState;
use super::{
    account, admin, associations, batch, faults, gate, groups, labels, oauth, object_schemas,
    objects, owners, pipelines, properties, search, webhooks,
};

/// The whole application on `state`.
pub(crate) fn app(state: AppState) -> Router {
    Router::new()
        .merge(objects::router())
        .merge(batch::router())
        .merge(search::router())
        .merge(properties::router())
        .merge(groups::router())
        .merge(pipelines::router())
        .merge(associations::router())
        .merge(labels::router())
        .merge(owners::router())
        .merge(object_schemas::router())
        .merge(account::router())
        .merge(admin::router())
        .merge(faults::router())
        .merge(webhooks::router())
        .merge(oauth::router())
        .fallback(gate::not_found)
        .method_not_allowed_fallback(gate::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), gate::gate))
        .with_state(state)
}
