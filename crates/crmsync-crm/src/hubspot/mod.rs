//! HubSpot client (placeholder).
