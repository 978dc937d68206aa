//! Tasks and the values that make them up.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A title: 1..=200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let title = raw.trim();
        if !(1..=Self::MAX_CHARS).contains(&title.chars().count()) {
            return Err(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        no_nul(title)?;
        Ok(Self(title.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that search and title sorting use.
    pub fn folded(&self) -> String {
        fold(&self.0)
    }
}

/// Case folding shared by stored titles and search terms.
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// No database keeps a NUL in text (Postgres refuses it), so stored text must not hold one.
fn no_nul(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        Err("must not contain NUL characters".into())
    } else {
        Ok(())
    }
}

/// A `q` search parameter: absent or empty searches nothing; otherwise at most `max_chars`
/// characters without NUL, case-folded.
pub fn search_term(raw: Option<&str>, max_chars: usize) -> Result<Option<String>, String> {
    match raw {
        None | Some("") => Ok(None),
        Some(q) if q.chars().count() > max_chars => {
            Err(format!("q must be at most {max_chars} characters"))
        }
        Some(q) => {
            no_nul(q).map_err(|m| format!("q {m}"))?;
            Ok(Some(fold(q)))
        }
    }
}

/// A description: at most 10,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDescription(String);

impl TaskDescription {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        no_nul(raw)?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses an RFC 3339 timestamp, normalised to UTC at microsecond precision. Only years
/// 0001 to 9999 *in UTC* are accepted: an offset can push a valid-looking local time out of
/// that range (`9999-12-31T23:59:59-23:59`), and both backends store four-digit years.
pub fn parse_timestamp(raw: &str) -> Result<OffsetDateTime, String> {
    let parsed = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| "must be an RFC 3339 timestamp such as 2026-11-21T10:15:00Z".to_owned())?;
    parsed
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (1..=9999).contains(&t.year()))
        .map(super::truncate_to_micros)
        .ok_or_else(|| {
            "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in UTC".to_owned()
        })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    #[serde(skip)]
    pub owner_id: Uuid,
    pub title: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub completed: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub due_date: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Bumped by every change; the `ETag` is this number in quotes.
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: TaskTitle,
    pub description: Option<TaskDescription>,
    pub completed: bool,
    pub due_date: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
}

/// The fields a PATCH sets; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<TaskTitle>,
    pub description: Option<Option<TaskDescription>>,
    pub completed: Option<bool>,
    pub due_date: Option<Option<OffsetDateTime>>,
}

/// `If-Match` as the store applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`, or `*`: any existing task.
    Any,
    /// One of these versions.
    Versions(Vec<i64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt,
    DueDate,
    Title,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSort {
    pub key: SortKey,
    pub descending: bool,
}

impl TaskSort {
    pub const DEFAULT: TaskSort = TaskSort {
        key: SortKey::CreatedAt,
        descending: true,
    };

    /// Every accepted `sort` value.
    pub const ALL: [&'static str; 6] = [
        "created_at",
        "-created_at",
        "due_date",
        "-due_date",
        "title",
        "-title",
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let key = match name {
            "created_at" => SortKey::CreatedAt,
            "due_date" => SortKey::DueDate,
            "title" => SortKey::Title,
            _ => return None,
        };
        Some(Self { key, descending })
    }

    pub fn as_str(self) -> &'static str {
        match (self.key, self.descending) {
            (SortKey::CreatedAt, false) => "created_at",
            (SortKey::CreatedAt, true) => "-created_at",
            (SortKey::DueDate, false) => "due_date",
            (SortKey::DueDate, true) => "-due_date",
            (SortKey::Title, false) => "title",
            (SortKey::Title, true) => "-title",
        }
    }
}

/// Where the previous page ended: the sort key's value and the id of the last item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    Time(OffsetDateTime),
    /// A task without a due date (they sort last in both directions).
    NoDueDate,
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPosition {
    pub value: SortValue,
    pub id: Uuid,
}

impl TaskPosition {
    /// The position of `task` in `sort` order.
    pub fn of(task: &Task, sort: TaskSort) -> Self {
        let value = match sort.key {
            SortKey::CreatedAt => SortValue::Time(task.created_at),
            SortKey::DueDate => task.due_date.map_or(SortValue::NoDueDate, SortValue::Time),
            SortKey::Title => SortValue::Text(fold(&task.title)),
        };
        Self { value, id: task.id }
    }
}

#[derive(Debug, Clone)]
pub struct TaskQuery {
    pub completed: Option<bool>,
    pub due_before: Option<OffsetDateTime>,
    pub due_after: Option<OffsetDateTime>,
    /// Already case-folded.
    pub search: Option<String>,
    pub sort: TaskSort,
    pub after: Option<TaskPosition>,
    /// Rows to fetch (the page size plus one, to know whether there is a next page).
    pub fetch: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(
            TaskTitle::parse("  buy milk ").unwrap().as_str(),
            "buy milk"
        );
        assert!(TaskTitle::parse("   ").is_err());
        assert!(TaskTitle::parse(&"t".repeat(200)).is_ok());
        assert!(TaskTitle::parse(&"t".repeat(201)).is_err());
    }

    #[test]
    fn descriptions_are_bounded_in_characters() {
        assert!(TaskDescription::parse(&"é".repeat(10_000)).is_ok());
        assert!(TaskDescription::parse(&"d".repeat(10_001)).is_err());
    }

    #[test]
    fn timestamps_are_normalised_to_utc() {
        let t = parse_timestamp("2026-11-21T12:15:00+02:00").unwrap();
        assert_eq!(t, parse_timestamp("2026-11-21T10:15:00Z").unwrap());
        assert!(parse_timestamp("tomorrow").is_err());
        // Offsets that push the time out of the storable range are errors, not panics.
        for out_of_range in [
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:00:00-01:00",
            "0001-01-01T00:00:00+00:01",
            "0000-06-01T00:00:00Z",
        ] {
            assert!(
                parse_timestamp(out_of_range)
                    .unwrap_err()
                    .contains("between"),
                "{out_of_range}"
            );
        }
        assert!(parse_timestamp("9999-12-31T23:59:59Z").is_ok());
        assert!(parse_timestamp("0001-01-01T00:00:00Z").is_ok());
        assert!(parse_timestamp("9999-12-31T23:59:59.999999999+00:00").is_ok());
        assert!(parse_timestamp("2026-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn every_sort_round_trips_and_unknown_ones_are_refused() {
        for s in [
            "created_at",
            "-created_at",
            "due_date",
            "-due_date",
            "title",
            "-title",
        ] {
            assert_eq!(TaskSort::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(TaskSort::parse("priority"), None);
        assert_eq!(TaskSort::parse("--title"), None);
    }
}
