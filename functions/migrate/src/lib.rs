//! The `migrate` function: applies the database migrations as part of a deploy.
//!
//! It has no API route. `template.yaml` declares it as the handler of a CloudFormation
//! custom resource (`Migrations`) whose properties carry a digest of `migrations/postgres`,
//! so CloudFormation invokes it when a stack is created and whenever a deploy changes the
//! migration set; the API functions depend on that resource, so their new code goes live
//! only after the migrations succeeded, and a failed migration rolls the deploy back
//! before any traffic reaches new code. The API functions never migrate, cold start or not.
//!
//! Every invocation ends with an answer to CloudFormation's pre-signed `ResponseURL`,
//! `SUCCESS` or `FAILED` with the reason, whatever went wrong (bad configuration, an
//! unreachable database, a failing migration, the function's own deadline): without one,
//! CloudFormation would wait for the resource's `ServiceTimeout`.
//!
//! - `Create`, and `Update` to this build's migration set ([`MIGRATIONS_DIGEST`]): apply
//!   pending migrations, each in its own transaction (a failing one leaves nothing behind),
//!   bounded by `statement_timeout` and `lock_timeout` so a slow migration fails the deploy
//!   instead of holding the API's tables. Migrations the database has and this build does
//!   not know are left in place: migrations are expand-only.
//! - `Update` to another migration set: nothing. That is a rollback: CloudFormation hands
//!   the resource its previous properties back, and this (new) function is still the one
//!   answering, since the resource depends on it. Migrating again would fail again (when
//!   the deploy failed on a migration) and leave the stack in `UPDATE_ROLLBACK_FAILED`; and
//!   the schema may stay ahead of the older code anyway.
//! - `Delete` (the stack or the resource goes away): nothing. Data outlives stacks.

pub mod respond;

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use shared::store::migrations::MigrationReport;

/// The digest of the migrations this binary embeds, as `template.yaml`'s
/// `Migrations.MigrationsDigest` must carry it (computed by `build.rs`).
pub const MIGRATIONS_DIGEST: &str = env!("MIGRATIONS_DIGEST");

/// The physical id of the resource: one schema per database, whatever the stack.
pub const PHYSICAL_RESOURCE_ID: &str = "task-api-schema";

/// CloudFormation accepts a response body of at most 4 KiB; the reason gets this much.
const MAX_REASON_BYTES: usize = 2048;
/// And `Data.Applied` this much.
const MAX_DATA_BYTES: usize = 512;

/// The part of the function's time kept back to answer CloudFormation after the deadline
/// of the migration itself.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// How long a migration statement may wait for a lock (on a table the API is using) before
/// the migration, and so the deploy, fails.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A custom-resource request, as CloudFormation sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceEvent {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Absent on `Create`.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// What a request asks of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Migrate,
    /// Nothing, and why.
    Nothing(String),
}

impl CustomResourceEvent {
    /// The `MigrationsDigest` the request carries.
    pub fn digest(&self) -> Option<&str> {
        self.resource_properties["MigrationsDigest"].as_str()
    }

    /// What to do for this request, for a build embedding the migrations of `ours`.
    pub fn action(&self, ours: &str) -> Action {
        match self.request_type {
            RequestType::Create => Action::Migrate,
            RequestType::Update if self.digest() == Some(ours) => Action::Migrate,
            RequestType::Update => Action::Nothing(format!(
                "Update to migration set {}, not this build's ({ours}): a rollback; the schema \
                 is left as it is (migrations are expand-only)",
                self.digest().unwrap_or("(none)")
            )),
            RequestType::Delete => {
                Action::Nothing("Delete: nothing to do; the schema and its data are kept".into())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The answer CloudFormation reads from the `ResponseURL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    pub status: Status,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub no_echo: bool,
    /// `Version` (the schema's highest migration), `Applied` and `Repaired` (this run's), for
    /// `!GetAtt`.
    pub data: BTreeMap<String, String>,
}

/// What the function did: nothing, a migration run, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Skipped(String),
    Migrated(MigrationReport),
    Failed(String),
}

/// The answer to `event` after `outcome`. The physical id never changes, so an `Update`
/// never makes CloudFormation delete the "old" resource.
pub fn response(event: &CustomResourceEvent, outcome: &Outcome) -> CustomResourceResponse {
    let (status, reason, data) = match outcome {
        Outcome::Skipped(reason) => (Status::Success, reason.clone(), BTreeMap::new()),
        Outcome::Migrated(report) => {
            let applied = report
                .applied
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let repaired = report
                .repaired
                .iter()
                .map(|r| r.version.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let data = BTreeMap::from([
                ("Applied".to_owned(), truncate(applied, MAX_DATA_BYTES)),
                ("Repaired".to_owned(), truncate(repaired, MAX_DATA_BYTES)),
                (
                    "Version".to_owned(),
                    report.version.map(|v| v.to_string()).unwrap_or_default(),
                ),
            ]);
            (Status::Success, report.to_string(), data)
        }
        Outcome::Failed(reason) => (Status::Failed, reason.clone(), BTreeMap::new()),
    };
    CustomResourceResponse {
        status,
        reason: truncate(reason, MAX_REASON_BYTES),
        physical_resource_id: event
            .physical_resource_id
            .clone()
            .unwrap_or_else(|| PHYSICAL_RESOURCE_ID.to_owned()),
        stack_id: event.stack_id.clone(),
        request_id: event.request_id.clone(),
        logical_resource_id: event.logical_resource_id.clone(),
        no_echo: false,
        data,
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// Applies the migrations to the configured database, within `budget`.
///
/// The configuration is the API functions' own (the same variables), read here rather than
/// at init so that a bad one is a `FAILED` answer naming the variable, not a function that
/// never starts while CloudFormation waits.
pub async fn migrate_database(budget: Duration) -> Outcome {
    let config = match shared::config::Config::from_env(shared::config::Runtime::Lambda) {
        Ok(config) => config,
        Err(err) => return Outcome::Failed(format!("configuration: {err}")),
    };
    // MIGRATIONS_DATABASE_URL when set: the database itself, not a proxy in front of it.
    let db = shared::config::DbConfig {
        max_connections: 1,
        ..config.db.for_migrations()
    };
    let store = match shared::store::postgres::PgStore::connect_lazy(&db) {
        Ok(store) => store,
        Err(err) => return Outcome::Failed(shared::error::chain(&err)),
    };
    // Postgres cancels a statement at the bound, which rolls its migration back; the
    // client-side timeout is only the backstop for a database that does not answer at all.
    let statement_timeout = budget.saturating_sub(Duration::from_secs(5));
    // A lock wait gives up with half the time still left at most, so that a short
    // invocation answers with the lock, not the statement, as the cause.
    let run = store.migrate_bounded(shared::store::migrations::Bounds {
        statement_timeout,
        lock_timeout: LOCK_TIMEOUT.min(statement_timeout / 2),
    });
    let outcome = match tokio::time::timeout(budget, run).await {
        Ok(Ok(report)) => Outcome::Migrated(report),
        Ok(Err(err)) => Outcome::Failed(shared::error::chain(&err)),
        Err(_) => Outcome::Failed(format!(
            "the database did not answer within {} s (raise the migrate function's Timeout)",
            budget.as_secs()
        )),
    };
    // Bounded: a connection still busy in a cancelled statement must not keep the answer
    // from CloudFormation.
    let _ = tokio::time::timeout(Duration::from_secs(2), store.pool().close()).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::migrations::Repaired;

    fn event(kind: &str) -> CustomResourceEvent {
        serde_json::from_value(serde_json::json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:migrate",
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=abc",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/task-api/guid",
            "RequestId": "req-1",
            "LogicalResourceId": "Migrations",
            "ResourceType": "Custom::Migrations",
            "ResourceProperties": {"ServiceToken": "arn", "MigrationsDigest": "sha256:00"}
        }))
        .unwrap()
    }

    #[test]
    fn create_and_an_update_to_this_build_migrate_a_rollback_and_delete_do_nothing() {
        let ours = "sha256:00";
        assert_eq!(event("Create").action(ours), Action::Migrate);
        assert_eq!(event("Update").action(ours), Action::Migrate);
        let Action::Nothing(why) = event("Update").action("sha256:11") else {
            panic!("an Update to another migration set must not migrate");
        };
        assert!(
            why.contains("rollback") && why.contains("sha256:00"),
            "{why}"
        );
        assert!(matches!(event("Delete").action(ours), Action::Nothing(_)));
        assert!(MIGRATIONS_DIGEST.starts_with("sha256:") && MIGRATIONS_DIGEST.len() == 71);
        assert!(
            serde_json::from_value::<CustomResourceEvent>(
                serde_json::json!({"RequestType": "Create"})
            )
            .is_err()
        );
    }

    #[test]
    fn a_response_echoes_the_request_and_keeps_the_physical_id() {
        let create = event("Create");
        let report = MigrationReport {
            repaired: vec![Repaired {
                version: 3,
                text_of: "abcdef0",
            }],
            applied: vec![4, 5],
            unknown: vec![],
            version: Some(5),
        };
        let r = response(&create, &Outcome::Migrated(report));
        assert_eq!(r.status, Status::Success);
        assert_eq!(r.physical_resource_id, PHYSICAL_RESOURCE_ID);
        assert_eq!(r.request_id, "req-1");
        assert_eq!(r.logical_resource_id, "Migrations");
        assert_eq!(r.stack_id, create.stack_id);
        assert_eq!(r.data["Applied"], "4,5");
        assert_eq!(r.data["Version"], "5");
        assert_eq!(r.data["Repaired"], "3");
        assert_eq!(
            r.reason,
            "repaired migration 3 (applied in its text of abcdef0); applied migrations 4, 5; \
             schema at version 5"
        );

        let mut update = event("Update");
        update.physical_resource_id = Some("kept-id".into());
        let r = response(&update, &Outcome::Failed("boom".into()));
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.reason, "boom");
        assert_eq!(r.physical_resource_id, "kept-id");
        let body = serde_json::to_value(&r).unwrap();
        assert_eq!(body["Status"], "FAILED");
        assert_eq!(body["PhysicalResourceId"], "kept-id");
        assert_eq!(body["NoEcho"], false);
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let r = response(&event("Create"), &Outcome::Failed("é".repeat(5000)));
        assert!(r.reason.len() <= MAX_REASON_BYTES);
        assert!(r.reason.ends_with("..."));
        let body = serde_json::to_vec(&r).unwrap();
        assert!(body.len() < 4096, "{} bytes", body.len());
    }
}
