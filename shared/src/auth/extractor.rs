//! The [`AuthUser`] extractor: a handler that takes it can only run for a request with a
//! valid access token whose user still exists and is enabled and whose session is live.
//! The check costs one primary-key lookup (the user, with their session in the same
//! statement), so a token stops working at once when its user is deleted or disabled, its
//! session is logged out or revoked, or the password changes; and the role comes from the
//! database, not the token (a demotion takes effect immediately).

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};
use uuid::Uuid;

use crate::{
    auth::security::{self, SecurityEvent, Subject},
    error::ApiError,
    http::ClientAddr,
    models::{Role, User},
    state::AppState,
    store::TokenUser,
};

/// The signed-in user, as the database has them now.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
    pub user: User,
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = bearer_token(parts).ok_or_else(|| refuse("missing or malformed bearer"))?;
        let claims = state
            .jwt
            .verify(token)
            .map_err(|e| refuse(&e.to_string()))?;
        let found = state
            .store
            .users()
            .for_access_token(claims.sub, claims.sid)
            .await?;
        match found {
            Some(found) if found.user.disabled => Err(refuse("user is disabled")),
            Some(found) if !found.session_live => Err(refuse("session has ended")),
            Some(TokenUser { user, .. }) => {
                tracing::Span::current().record("user_id", tracing::field::display(user.id));
                Ok(AuthUser {
                    id: user.id,
                    role: user.role,
                    user,
                })
            }
            None => Err(refuse("user no longer exists")),
        }
    }
}

/// Every refusal looks the same to the client; the reason goes to the debug log.
fn refuse(reason: &str) -> ApiError {
    tracing::debug!(reason, "bearer token refused");
    ApiError::unauthorized()
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A signed-in, enabled user whose role is `admin` in the database right now. No token is
/// 401; any other role is 403. A demoted admin loses access on their next request, whatever
/// their token says.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl<S> FromRequestParts<S> for AdminUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.role == Role::Admin {
            Ok(AdminUser(user))
        } else {
            let Ok(client) = ClientAddr::from_request_parts(parts, state).await;
            let app = AppState::from_ref(state);
            security::record(
                SecurityEvent::AdminRouteRefused,
                client,
                Subject::User(user.id),
                &app.config.password_pepper,
            );
            Err(ApiError::new(crate::error::ErrorKind::Forbidden)
                .with_detail("this route is for admins only"))
        }
    }
}
