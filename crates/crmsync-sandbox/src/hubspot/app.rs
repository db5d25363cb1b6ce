//! Assembles the HTTP areas into one router behind the [`gate`](super::gate) middleware.

use axum::Router;
use axum::middleware;

use super::state::AppState;
use super::{account, admin, associations, batch, gate, objects, pipelines, properties, search};
use crate::SandboxConfig;

/// The whole application for `config`.
pub(crate) fn app(config: SandboxConfig) -> Router {
    let state = AppState::new(&config);
    Router::new()
        .merge(objects::router())
        .merge(batch::router())
        .merge(search::router())
        .merge(properties::router())
        .merge(pipelines::router())
        .merge(associations::router())
        .merge(account::router())
        .merge(admin::router())
        .fallback(gate::not_found)
        .method_not_allowed_fallback(gate::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), gate::gate))
        .with_state(state)
}
