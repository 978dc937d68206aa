//! The API's decisions, as plain functions over plain data.
//!
//! The store loads and locks what a decision needs, in the transaction that will write its
//! result, calls the function here and writes what it says; the decision itself reads no
//! database, so it is unit-tested below as it is. What the database alone can decide for
//! concurrent clients (a conditional `UPDATE`, a unique index, a conditional upsert) stays in
//! the statement that decides it.
//!
//! Every refusal is an error type with its problem+json answer (`From<…> for ApiError`), so
//! the store's methods return `Result<T, Refusal>` and a handler needs only `?`.

use uuid::Uuid;

use crate::{
    error::{ApiError, ErrorKind},
    models::{Precondition, Role, Task, User, UserChange},
};

// --- Admin changes: the last-admin guard -----------------------------------------------

/// Why an admin change or deletion was refused; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRefusal {
    NotFound,
    /// It would leave no enabled admin.
    LastAdmin,
    /// The acting admin has been demoted or disabled since their token was issued.
    NoLongerAdmin,
    /// Admins cannot delete their own account through the API.
    SelfDeletion,
}

impl From<AdminRefusal> for ApiError {
    fn from(refusal: AdminRefusal) -> Self {
        match refusal {
            AdminRefusal::NotFound => ApiError::not_found(),
            AdminRefusal::LastAdmin => {
                ApiError::new(ErrorKind::LastAdmin).with_detail("this would leave no enabled admin")
            }
            AdminRefusal::NoLongerAdmin => {
                ApiError::new(ErrorKind::Forbidden).with_detail("you are no longer an admin")
            }
            AdminRefusal::SelfDeletion => ApiError::new(ErrorKind::Forbidden)
                .with_detail("admins cannot delete their own account through the API"),
        }
    }
}

/// The acting admin must still be one of the enabled admins; `None` is the command line,
/// which needs no account.
pub fn admit_actor(actor: Option<Uuid>, enabled_admins: &[Uuid]) -> Result<(), AdminRefusal> {
    match actor {
        Some(actor) if !enabled_admins.contains(&actor) => Err(AdminRefusal::NoLongerAdmin),
        _ => Ok(()),
    }
}

/// What `change` actually changes on `user` (`None`: nothing, so nothing is written or
/// audited), refused when it would take away the last enabled admin.
pub fn plan_user_change(
    user: &User,
    change: &UserChange,
    enabled_admins: &[Uuid],
) -> Result<Option<UserChange>, AdminRefusal> {
    let role = change.role.filter(|role| *role != user.role);
    let disabled = change
        .disabled
        .filter(|disabled| *disabled != user.disabled);
    let loses_admin = role == Some(Role::User) || disabled == Some(true);
    if is_enabled_admin(user) && loses_admin && enabled_admins.len() <= 1 {
        return Err(AdminRefusal::LastAdmin);
    }
    Ok((role.is_some() || disabled.is_some()).then_some(UserChange { role, disabled }))
}

/// Whether `actor` (an enabled admin, see [`admit_actor`]) may delete `user`.
pub fn check_deletion(
    actor: Uuid,
    user: &User,
    enabled_admins: &[Uuid],
) -> Result<(), AdminRefusal> {
    if user.id == actor {
        return Err(AdminRefusal::SelfDeletion);
    }
    if is_enabled_admin(user) && enabled_admins.len() <= 1 {
        return Err(AdminRefusal::LastAdmin);
    }
    Ok(())
}

fn is_enabled_admin(user: &User) -> bool {
    user.role == Role::Admin && !user.disabled
}

// --- Task writes with If-Match ------------------------------------------------------------

/// Why a conditional task write changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefusal {
    /// No such task, or another user's (the same answer: ids are not probed).
    NotFound,
    /// The task exists, but not at a version `If-Match` names.
    PreconditionFailed,
    /// `If-Match` lists more than [`IF_MATCH_MAX_ENTRIES`] entity tags or holds more than
    /// [`IF_MATCH_MAX_BYTES`] bytes: refused before the task is looked up.
    IfMatchTooLong,
}

impl From<WriteRefusal> for ApiError {
    fn from(refusal: WriteRefusal) -> Self {
        match refusal {
            WriteRefusal::NotFound => ApiError::not_found(),
            WriteRefusal::PreconditionFailed => ApiError::new(ErrorKind::PreconditionFailed)
                .with_detail("If-Match does not match the task's current version"),
            WriteRefusal::IfMatchTooLong => {
                ApiError::new(ErrorKind::PreconditionFailed).with_detail(format!(
                    "If-Match may list at most {IF_MATCH_MAX_ENTRIES} entity tags in {IF_MATCH_MAX_BYTES} bytes"
                ))
            }
        }
    }
}

/// Why a write conditioned on owner, id and `If-Match` touched no row, given whether the
/// owner's task exists at all.
pub fn unwritten(task_exists: bool) -> WriteRefusal {
    if task_exists {
        WriteRefusal::PreconditionFailed
    } else {
        WriteRefusal::NotFound
    }
}

/// Most entity tags an `If-Match` may list, and most bytes its values may hold: a client
/// names the one or two versions it has seen, never thousands.
pub const IF_MATCH_MAX_ENTRIES: usize = 32;
pub const IF_MATCH_MAX_BYTES: usize = 4096;

/// The precondition the `If-Match` header lines `values` state. Absent or `*` matches any
/// existing task; otherwise a list of strong entity tags (`"3"`, `"3", "4"`). Weak or
/// malformed entries match nothing, as RFC 9110 requires of strong comparison. A list
/// too long to be a precondition a client means is refused ([`WriteRefusal::IfMatchTooLong`],
/// 412) and nothing changes.
pub fn precondition<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Precondition, WriteRefusal> {
    let values: Vec<&str> = values.into_iter().collect();
    if values.is_empty() {
        return Ok(Precondition::Any);
    }
    if values.iter().map(|v| v.len()).sum::<usize>() > IF_MATCH_MAX_BYTES {
        return Err(WriteRefusal::IfMatchTooLong);
    }
    let entries: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if entries.len() > IF_MATCH_MAX_ENTRIES {
        return Err(WriteRefusal::IfMatchTooLong);
    }
    if entries.contains(&"*") {
        return Ok(Precondition::Any);
    }
    let mut versions: Vec<i64> = entries
        .iter()
        .filter_map(|e| e.strip_prefix('"')?.strip_suffix('"')?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    Ok(Precondition::Versions(versions))
}

// --- Idempotent create ------------------------------------------------------------------

/// A successful create: a new task, or the recorded answer of the request that first used
/// the `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(Task),
    Replayed { status: u16, body: String },
}

/// Why a create stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateRefusal {
    /// The key was used before with a different request.
    KeyReused,
    /// The key's first request has not finished.
    InProgress,
    /// The owner already has `max` tasks.
    LimitReached { max: u32 },
}

impl From<CreateRefusal> for ApiError {
    fn from(refusal: CreateRefusal) -> Self {
        match refusal {
            CreateRefusal::KeyReused => ApiError::new(ErrorKind::IdempotencyKeyReused)
                .with_detail("this Idempotency-Key was used with a different request"),
            CreateRefusal::InProgress => ApiError::new(ErrorKind::IdempotencyInProgress)
                .with_detail("a request with this Idempotency-Key is still in progress")
                .with_retry_after(1),
            CreateRefusal::LimitReached { max } => ApiError::new(ErrorKind::TaskLimitReached)
                .with_detail(format!(
                    "you have {max} tasks, the most allowed; delete some first"
                )),
        }
    }
}

/// An idempotency record as stored: the request's fingerprint, and its answer once the first
/// request finished.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRecord {
    pub fingerprint: Vec<u8>,
    pub status: Option<i64>,
    pub body: Option<String>,
}

/// The answer to a create whose key was already claimed, from the claim's record (`None`:
/// the claiming request has not committed yet).
pub fn replay(fingerprint: &[u8; 32], record: Option<KeyRecord>) -> Result<Created, CreateRefusal> {
    let Some(record) = record else {
        return Err(CreateRefusal::InProgress);
    };
    if record.fingerprint != fingerprint {
        return Err(CreateRefusal::KeyReused);
    }
    match (record.status, record.body) {
        (Some(status), Some(body)) => Ok(Created::Replayed {
            status: u16::try_from(status).unwrap_or(500),
            body,
        }),
        _ => Err(CreateRefusal::InProgress),
    }
}

// --- Refresh rotation ------------------------------------------------------------------

/// A presented refresh token as stored, read after the rotation's conditional update did
/// not spend it. (Of concurrent rotations of one token, that update alone picks the one
/// that succeeds; this only says why the others failed.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredRefresh {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub spent: bool,
    /// Revoked one by one (the release before sessions did this).
    pub revoked: bool,
    pub expired: bool,
    /// Its session is neither revoked nor past its absolute age, is at its user's epoch,
    /// and the user is enabled.
    pub session_live: bool,
}

/// What a presented refresh token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// It may be spent for a successor.
    Fresh,
    /// It was spent before: someone holds a copy, so its whole session must end.
    Spent,
    /// It, or its session, was ended (logout, reuse, password change, disable, or the
    /// session's absolute age).
    Revoked,
    /// It lived past its own expiry.
    Expired,
}

/// The verdict on a stored refresh token. Reuse wins over every other reason: a spent
/// token presented again ends its session even when it has since expired or been revoked.
pub fn refresh_verdict(token: &StoredRefresh) -> RefreshVerdict {
    if token.spent {
        RefreshVerdict::Spent
    } else if token.revoked || !token.session_live {
        RefreshVerdict::Revoked
    } else if token.expired {
        RefreshVerdict::Expired
    } else {
        RefreshVerdict::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, disabled: bool) -> User {
        let now = crate::models::now();
        User {
            id: Uuid::now_v7(),
            email: "someone@example.com".into(),
            name: "Someone".into(),
            role,
            disabled,
            email_verified: true,
            created_at: now,
            updated_at: now,
        }
    }

    fn change(role: Option<Role>, disabled: Option<bool>) -> UserChange {
        UserChange { role, disabled }
    }

    #[test]
    fn only_enabled_admins_act() {
        let admin = Uuid::now_v7();
        assert_eq!(admit_actor(Some(admin), &[admin]), Ok(()));
        assert_eq!(
            admit_actor(Some(admin), &[Uuid::now_v7()]),
            Err(AdminRefusal::NoLongerAdmin)
        );
        assert_eq!(
            admit_actor(None, &[]),
            Ok(()),
            "the command line needs no account"
        );
    }

    #[test]
    fn the_last_enabled_admin_cannot_be_demoted_or_disabled() {
        let last = user(Role::Admin, false);
        let admins = [last.id];
        for refused in [change(Some(Role::User), None), change(None, Some(true))] {
            assert_eq!(
                plan_user_change(&last, &refused, &admins),
                Err(AdminRefusal::LastAdmin),
                "{refused:?}"
            );
        }
        // With another enabled admin, the same change goes ahead.
        let two = [last.id, Uuid::now_v7()];
        assert_eq!(
            plan_user_change(&last, &change(None, Some(true)), &two),
            Ok(Some(change(None, Some(true))))
        );
        // Changes that keep them an enabled admin are no threat.
        assert_eq!(
            plan_user_change(&last, &change(Some(Role::Admin), Some(false)), &admins),
            Ok(None)
        );
    }

    #[test]
    fn a_change_keeps_only_what_differs() {
        let someone = user(Role::User, false);
        assert_eq!(
            plan_user_change(&someone, &change(Some(Role::User), Some(true)), &[]),
            Ok(Some(change(None, Some(true))))
        );
        assert_eq!(
            plan_user_change(&someone, &change(Some(Role::User), Some(false)), &[]),
            Ok(None)
        );
        // Disabling or demoting someone who is not an enabled admin never trips the guard.
        let disabled_admin = user(Role::Admin, true);
        assert_eq!(
            plan_user_change(&disabled_admin, &change(Some(Role::User), None), &[]),
            Ok(Some(change(Some(Role::User), None)))
        );
    }

    #[test]
    fn deletion_refuses_oneself_and_the_last_admin() {
        let actor = user(Role::Admin, false);
        assert_eq!(
            check_deletion(actor.id, &actor, &[actor.id]),
            Err(AdminRefusal::SelfDeletion)
        );
        let other_admin = user(Role::Admin, false);
        assert_eq!(
            check_deletion(actor.id, &other_admin, &[other_admin.id]),
            Err(AdminRefusal::LastAdmin)
        );
        assert_eq!(
            check_deletion(actor.id, &other_admin, &[actor.id, other_admin.id]),
            Ok(())
        );
        assert_eq!(
            check_deletion(actor.id, &user(Role::User, false), &[actor.id]),
            Ok(())
        );
    }

    #[test]
    fn an_unwritten_task_is_missing_or_at_another_version() {
        assert_eq!(unwritten(false), WriteRefusal::NotFound);
        assert_eq!(unwritten(true), WriteRefusal::PreconditionFailed);
    }

    #[test]
    fn a_claimed_key_replays_refuses_or_waits() {
        let fingerprint = [7u8; 32];
        let record = |fingerprint: &[u8], status: Option<i64>, body: Option<&str>| KeyRecord {
            fingerprint: fingerprint.to_vec(),
            status,
            body: body.map(str::to_owned),
        };
        assert_eq!(
            replay(
                &fingerprint,
                Some(record(&fingerprint, Some(201), Some("{}")))
            ),
            Ok(Created::Replayed {
                status: 201,
                body: "{}".into()
            })
        );
        assert_eq!(
            replay(
                &fingerprint,
                Some(record(&[8u8; 32], Some(201), Some("{}")))
            ),
            Err(CreateRefusal::KeyReused)
        );
        // Claimed, not yet answered; or the claim not yet visible.
        assert_eq!(
            replay(&fingerprint, Some(record(&fingerprint, None, None))),
            Err(CreateRefusal::InProgress)
        );
        assert_eq!(replay(&fingerprint, None), Err(CreateRefusal::InProgress));
    }

    #[test]
    fn every_refusal_has_its_problem() {
        let answers = [
            (ApiError::from(AdminRefusal::NotFound), 404, "not_found"),
            (AdminRefusal::LastAdmin.into(), 409, "last_admin"),
            (AdminRefusal::NoLongerAdmin.into(), 403, "forbidden"),
            (AdminRefusal::SelfDeletion.into(), 403, "forbidden"),
            (WriteRefusal::NotFound.into(), 404, "not_found"),
            (
                WriteRefusal::PreconditionFailed.into(),
                412,
                "precondition_failed",
            ),
            (
                CreateRefusal::KeyReused.into(),
                422,
                "idempotency_key_reused",
            ),
            (
                CreateRefusal::InProgress.into(),
                409,
                "idempotency_request_in_progress",
            ),
            (
                CreateRefusal::LimitReached { max: 3 }.into(),
                409,
                "task_limit_reached",
            ),
        ];
        for (error, status, code) in answers {
            let problem = error.problem();
            assert_eq!((problem.status, problem.code), (status, code));
        }
    }

    fn stored(spent: bool, revoked: bool, expired: bool, session_live: bool) -> StoredRefresh {
        StoredRefresh {
            session_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            spent,
            revoked,
            expired,
            session_live,
        }
    }

    #[test]
    fn a_live_unspent_token_of_a_live_session_is_fresh() {
        assert_eq!(
            refresh_verdict(&stored(false, false, false, true)),
            RefreshVerdict::Fresh
        );
    }

    #[test]
    fn reuse_is_detected_whatever_else_happened_to_the_token() {
        for revoked in [false, true] {
            for expired in [false, true] {
                for live in [false, true] {
                    assert_eq!(
                        refresh_verdict(&stored(true, revoked, expired, live)),
                        RefreshVerdict::Spent,
                        "revoked {revoked}, expired {expired}, session live {live}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_ended_token_or_session_is_revoked_before_it_is_expired() {
        assert_eq!(
            refresh_verdict(&stored(false, true, false, true)),
            RefreshVerdict::Revoked
        );
        assert_eq!(
            refresh_verdict(&stored(false, false, true, false)),
            RefreshVerdict::Revoked
        );
        assert_eq!(
            refresh_verdict(&stored(false, false, true, true)),
            RefreshVerdict::Expired
        );
    }

    #[test]
    fn if_match_forms() {
        let parse = |values: &[&str]| precondition(values.iter().copied()).unwrap();
        assert_eq!(parse(&[]), Precondition::Any);
        assert_eq!(parse(&["*"]), Precondition::Any);
        assert_eq!(parse(&["\"3\""]), Precondition::Versions(vec![3]));
        assert_eq!(
            parse(&["\"7\", \"4\"", "\"3\", \"4\""]),
            Precondition::Versions(vec![3, 4, 7])
        );
        assert_eq!(parse(&["W/\"3\""]), Precondition::Versions(vec![]));
        assert_eq!(parse(&["3"]), Precondition::Versions(vec![]));
        assert_eq!(
            parse(&["\"99999999999999999999999\""]),
            Precondition::Versions(vec![])
        );
    }

    #[test]
    fn long_if_match_lists_are_refused_whatever_their_entries() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("\"{i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert!(precondition([list(32).as_str()]).is_ok());
        for values in [
            vec![list(33)],
            vec![list(20), list(13)],
            vec!["*, ".repeat(40)],
            vec![format!("\"1\", {}", " ".repeat(5000))],
        ] {
            assert_eq!(
                precondition(values.iter().map(String::as_str)),
                Err(WriteRefusal::IfMatchTooLong)
            );
        }
        let answer = axum::response::IntoResponse::into_response(ApiError::from(
            WriteRefusal::IfMatchTooLong,
        ));
        assert_eq!(answer.status(), http::StatusCode::PRECONDITION_FAILED);
    }
}
