//! Repairs of migrations that were edited after they landed (`migrations/repairs/`): a
//! database that applied one of those earlier texts recorded its checksum, and is brought to
//! the schema today's text makes instead of being refused ([`super::migrations`]).

/// One earlier text of a migration, and the SQL that repairs a database that applied it.
#[derive(Debug)]
pub(crate) struct Repair {
    /// `<migration>.<commit>.sql`: the migration as it was at that commit.
    file: &'static str,
    /// The repair; its `-- checksum:` line is that text's SHA-384, as sqlx recorded it.
    pub(crate) sql: &'static str,
}

macro_rules! repair {
    ($backend:literal, $file:literal) => {
        Repair {
            file: $file,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../migrations/repairs/",
                $backend,
                "/",
                $file
            )),
        }
    };
}

#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: &[Repair] = &[
    repair!("postgres", "0005_sessions.f90c324.sql"),
    repair!("postgres", "0006_account_mail.2aa9c76.sql"),
    repair!("postgres", "0007_task_count.ffcab43.sql"),
    repair!("postgres", "0008_list_indexes.5fcc702.sql"),
    repair!("postgres", "0008_list_indexes.0b49ab7.sql"),
];

#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: &[Repair] = &[repair!("sqlite", "0005_sessions.f90c324.sql")];

impl Repair {
    /// The migration's version (the file name's leading number).
    fn version(&self) -> Option<i64> {
        self.file.split('_').next()?.parse().ok()
    }

    /// The commit whose text of the migration this repairs.
    pub(crate) fn commit(&self) -> &'static str {
        self.file.rsplit('.').nth(1).unwrap_or_default()
    }

    /// The recorded checksum of the text this repairs, in lower-case hex.
    fn checksum(&self) -> Option<&'static str> {
        self.sql
            .lines()
            .find_map(|line| line.strip_prefix("-- checksum: "))
            .map(str::trim)
    }

    /// Whether this repairs `version` recorded with `checksum`.
    fn repairs(&self, version: i64, checksum: &[u8]) -> bool {
        use std::fmt::Write as _;
        let hex = checksum.iter().fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        });
        self.version() == Some(version) && self.checksum() == Some(hex.as_str())
    }
}

/// The repair among `repairs` of `version` recorded with `checksum`, if it is one of the
/// known earlier texts.
pub(crate) fn find(
    repairs: &'static [Repair],
    version: i64,
    checksum: &[u8],
) -> Option<&'static Repair> {
    repairs.iter().find(|r| r.repairs(version, checksum))
}

#[cfg(test)]
mod tests {
    use super::Repair;

    /// Every file in `migrations/repairs/<backend>` is listed, names its version and commit,
    /// and has one checksum line of a SHA-384.
    fn listed_and_well_formed(backend: &str, listed: &[Repair]) {
        let dir = format!(
            "{}/../migrations/repairs/{backend}",
            env!("CARGO_MANIFEST_DIR")
        );
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
            "every repair in {dir} is listed, and only those"
        );
        for repair in listed {
            assert!(repair.version().is_some(), "{}", repair.file);
            assert_eq!(repair.commit().len(), 7, "{}", repair.file);
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
            assert!(repair.repairs(version, &bytes), "{}", repair.file);
            assert!(!repair.repairs(version + 1, &bytes), "{}", repair.file);
            assert!(!repair.repairs(version, &bytes[1..]), "{}", repair.file);
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn every_postgres_repair_is_listed_and_names_its_text() {
        listed_and_well_formed("postgres", super::POSTGRES);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn every_sqlite_repair_is_listed_and_names_its_text() {
        listed_and_well_formed("sqlite", super::SQLITE);
    }
}
