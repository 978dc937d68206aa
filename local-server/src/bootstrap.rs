//! `local-server create-admin`: the only way to make the first admin (never over HTTP).
//! Works against whatever `DATABASE_URL` points at, so it bootstraps cloud deployments too.

use std::io::BufRead;

use anyhow::{Context as _, bail};
use shared::{
    AppState,
    models::{Email, NewUser, Password, Role, UserChange, UserName, now},
    store::{Conflict, StoreError},
};
use uuid::Uuid;

/// Creates an admin with the password read from the first line of `password_input`, or with
/// `promote`, makes the existing user with `email` an enabled admin. Returns what happened.
pub async fn create_admin(
    state: &AppState,
    email: &str,
    name: Option<&str>,
    promote: bool,
    password_input: impl BufRead,
) -> anyhow::Result<String> {
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("--email {m}"))?;
    if promote {
        let Some(existing) = state
            .store
            .users()
            .credentials_by_email(&email)
            .await
            .context("looking the user up")?
        else {
            bail!("no user has the email {email}; drop --promote to create one");
        };
        let change = UserChange {
            role: Some(Role::Admin),
            disabled: Some(false),
        };
        match state
            .store
            .admin()
            .change_user(None, existing.user.id, &change, now())
            .await
            .context("promoting the user")?
        {
            Ok(user) => Ok(format!("{} ({}) is now an admin", user.email, user.id)),
            Err(refusal) => bail!("could not promote {email}: {refusal:?}"),
        }
    } else {
        let Some(name) = name else {
            bail!("--name is required unless --promote is given");
        };
        let name = UserName::parse(name).map_err(|m| anyhow::anyhow!("--name {m}"))?;
        let password = read_password(password_input)?;
        let hash = state
            .passwords
            .hash(password.expose())
            .await
            .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
        let created = state
            .store
            .users()
            .create(
                &NewUser {
                    id: Uuid::now_v7(),
                    email: email.clone(),
                    name,
                    password_hash: hash,
                    role: Role::Admin,
                    // The operator typed the address on the server: nothing to prove.
                    email_verified: true,
                    now: now(),
                },
                None,
            )
            .await;
        match created {
            Ok(user) => Ok(format!("created admin {} ({})", user.email, user.id)),
            Err(StoreError::Conflict(Conflict::EmailTaken)) => {
                bail!(
                    "a user with the email {email} already exists; use --promote to make them admin"
                )
            }
            Err(e) => Err(e).context("creating the admin"),
        }
    }
}

/// The first line of `input`, without its line ending; never echoed anywhere.
fn read_password(mut input: impl BufRead) -> anyhow::Result<Password> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!(
            "no password on standard input (pipe it in: echo \"$PASSWORD\" | local-server create-admin …)"
        );
    }
    Password::parse(password).map_err(|m| anyhow::anyhow!("the password {m}"))
}
