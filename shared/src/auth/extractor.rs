//! The [`AuthUser`] extractor: a handler that takes it can only run for a request with a
//! valid access token whose user still exists and is enabled. The check costs one
//! primary-key lookup, so a deleted or disabled user's token stops working at once, and the
//! role comes from the database, not the token (a demotion takes effect immediately).

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};
use uuid::Uuid;

use crate::{
    error::ApiError,
    models::{Role, User},
    state::AppState,
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
        let user = state.store.users().by_id(claims.sub).await?;
        match user {
            Some(user) if !user.disabled => {
                tracing::Span::current().record("user_id", tracing::field::display(user.id));
                Ok(AuthUser {
                    id: user.id,
                    role: user.role,
                    user,
                })
            }
            Some(_) => Err(refuse("user is disabled")),
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
            Err(ApiError::new(crate::error::ErrorKind::Forbidden)
                .with_detail("this route is for admins only"))
        }
    }
}
