-- OAuth access tokens shared by the workers of one CRM connection (HubSpot public apps): one
-- row per connection. `sealed` is the token as the CRM client sealed it (encrypted and
-- authenticated with a key derived from the app's client secret), never the token in clear.
-- A row is replaced only by a token that expires later, or when its token was refused.
CREATE TABLE oauth_tokens (
    connection     TEXT PRIMARY KEY NOT NULL,
    sealed         TEXT NOT NULL,
    obtained_at_ms INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL
);
