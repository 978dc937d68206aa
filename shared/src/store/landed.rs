//! Other texts of landed migrations, each keyed by the checksum of the text it stands for
//! ([`super::migrations`] uses them):
//!
//! - **repairs** (`migrations/repairs/`): a migration edited after it landed; a database
//!   that applied one of its earlier texts recorded that text's checksum, and is brought to
//!   the schema today's text makes instead of being refused;
//! - **plans** (`migrations/plans/`): a released migration that blocks writes while it runs
//!   (indexes built in a transaction) is applied through a plan of statements that make the
//!   same schema concurrently, recording the migration's own checksum, so that releases
//!   with that text, and sqlx's runner, still take the database for theirs.

/// A text standing for another text of a migration, named by that one's checksum.
#[derive(Debug)]
pub(crate) struct Text {
    /// `<migration>.<commit>.sql` for a repair (the migration as it was at that commit);
    /// `<migration>.sql` for a plan.
    file: &'static str,
    /// Its SQL; its one `-- checksum:` line is the SHA-384, as sqlx records it, of the text
    /// it stands for.
    pub(crate) sql: &'static str,
}

macro_rules! text {
    ($dir:literal, $file:literal) => {
        Text {
            file: $file,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../migrations/",
                $dir,
                "/",
                $file
            )),
        }
    };
}

#[cfg(feature = "postgres")]
pub(crate) const REPAIRS_POSTGRES: &[Text] = &[
    text!("repairs/postgres", "0005_sessions.f90c324.sql"),
    text!("repairs/postgres", "0006_account_mail.2aa9c76.sql"),
    text!("repairs/postgres", "0007_task_count.ffcab43.sql"),
    text!("repairs/postgres", "0008_list_indexes.5fcc702.sql"),
    text!("repairs/postgres", "0008_list_indexes.0b49ab7.sql"),
];

#[cfg(feature = "sqlite")]
pub(crate) const REPAIRS_SQLITE: &[Text] = &[text!("repairs/sqlite", "0005_sessions.f90c324.sql")];

/// Plans for Postgres migrations (SQLite has no concurrent builds).
#[cfg(feature = "postgres")]
pub(crate) const PLANS_POSTGRES: &[Text] = &[text!("plans/postgres", "0008_list_indexes.sql")];

impl Text {
    /// The migration's version (the file name's leading number).
    fn version(&self) -> Option<i64> {
        self.file.split('_').next()?.parse().ok()
    }

    /// The commit whose text of the migration a repair repairs.
    pub(crate) fn commit(&self) -> &'static str {
        self.file.rsplit('.').nth(1).unwrap_or_default()
    }

    /// The checksum of the text this stands for, in lower-case hex.
    fn checksum(&self) -> Option<&'static str> {
        self.sql
            .lines()
            .find_map(|line| line.strip_prefix("-- checksum: "))
            .map(str::trim)
    }

    /// Whether this stands for `version`'s text with `checksum`.
    fn stands_for(&self, version: i64, checksum: &[u8]) -> bool {
        use std::fmt::Write as _;
        let hex = checksum.iter().fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        });
        self.version() == Some(version) && self.checksum() == Some(hex.as_str())
    }
}

/// The text among `texts` that stands for `version`'s text with `checksum`, if any.
pub(crate) fn find(texts: &'static [Text], version: i64, checksum: &[u8]) -> Option<&'static Text> {
    texts.iter().find(|t| t.stands_for(version, checksum))
}

#[cfg(test)]
mod tests {
    use super::Text;

    /// Every file in `migrations/<dir>` is listed, names its version (and a repair its
    /// commit), and has one checksum line of a SHA-384.
    fn listed_and_well_formed(dir: &str, listed: &[Text]) {
        let dir = format!("{}/../migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        files.sort();
        let mut names: Vec<String> = listed.iter().map(|r| r.file.to_owned()).collect();
        names.sort();
        assert_eq!(
            files, names,
            "every file in {dir} is listed, and only those"
        );
        for repair in listed {
            assert!(repair.version().is_some(), "{}", repair.file);
            if dir.contains("repairs") {
                assert_eq!(repair.commit().len(), 7, "{}", repair.file);
            }
            let lines = repair
                .sql
                .lines()
                .filter(|l| l.starts_with("-- checksum: "));
            assert_eq!(lines.count(), 1, "{}: one checksum line", repair.file);
            let checksum = repair.checksum().unwrap_or_default();
            assert_eq!(checksum.len(), 96, "{}: a SHA-384 in hex", repair.file);
            assert!(
                checksum
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            let bytes: Vec<u8> = (0..48)
                .map(|i| u8::from_str_radix(&checksum[2 * i..2 * i + 2], 16).unwrap_or_default())
                .collect();
            let version = repair.version().unwrap_or_default();
            assert!(repair.stands_for(version, &bytes), "{}", repair.file);
            assert!(!repair.stands_for(version + 1, &bytes), "{}", repair.file);
            assert!(!repair.stands_for(version, &bytes[1..]), "{}", repair.file);
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn every_postgres_repair_and_plan_is_listed_and_names_its_text() {
        listed_and_well_formed("repairs/postgres", super::REPAIRS_POSTGRES);
        listed_and_well_formed("plans/postgres", super::PLANS_POSTGRES);
    }

    /// A plan stands for the migration's text as it is in this build: one whose text
    /// changed is never used (and this fails until the plan is brought up to date).
    #[cfg(feature = "postgres")]
    #[test]
    fn every_plan_names_its_migrations_text_of_today() {
        use crate::store::db::Driver as _;
        for plan in super::PLANS_POSTGRES {
            // The embedded migration, as the runner looks its plan up.
            let version = plan.version().unwrap_or_default();
            let migration = sqlx::Postgres::migrator()
                .iter()
                .find(|m| m.version == version)
                .unwrap_or_else(|| panic!("{}: no migration {version}", plan.file));
            assert!(
                super::find(super::PLANS_POSTGRES, version, &migration.checksum).is_some(),
                "{}: not the text of migration {version} in this build",
                plan.file
            );
            assert!(
                super::super::concurrent::parse(plan.sql).is_some(),
                "{}: only statements a migration outside a transaction may hold",
                plan.file
            );
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn every_sqlite_repair_is_listed_and_names_its_text() {
        listed_and_well_formed("repairs/sqlite", super::REPAIRS_SQLITE);
    }
}
