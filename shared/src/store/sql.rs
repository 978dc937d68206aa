//! A small SQL builder for statements whose text both backends share: it numbers
//! placeholders in each dialect's style (`$1` / `?1`) and keeps the values as [`Param`]s,
//! which each backend binds in its own types (timestamps are `timestamptz` on Postgres and
//! fixed-width text on SQLite: `Driver::time` in each backend's module, applied by `db::bind`).
//!
//! Why our own builder rather than sqlx's `QueryBuilder`: a statement here is a plain value
//! built once for either backend, so the builders in `tasks`, `accounts` and `admin` are
//! ordinary functions that unit tests can read without a database, and the generic
//! repositories need no `Encode`/`Type` bounds (a `QueryBuilder<DB>` binds through sqlx's own
//! encoders, whose SQLite timestamp text is variable-width and would not sort as time).
//!
//! Everything that differs in the *text* of a statement between the backends is in the two
//! [`Dialect`] tables below, side by side.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::Backend;

#[derive(Debug, Clone)]
pub enum Param {
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
    Text(String),
    OptText(Option<String>),
    Time(OffsetDateTime),
    OptTime(Option<OffsetDateTime>),
    Bool(bool),
    Int(i64),
    Bytes(Vec<u8>),
}

/// What differs in SQL text between the backends: all of it, in one table per backend.
#[derive(Debug, PartialEq, Eq)]
pub struct Dialect {
    /// Placeholders are this followed by the parameter's number: `$1`, `?1`.
    pub placeholder: &'static str,
    /// The backend locks rows a transaction reads with `FOR UPDATE` (Postgres). SQLite has
    /// no row locks: a writing transaction holds the database's write lock from its
    /// `BEGIN IMMEDIATE` (see `Driver::begin_writer`), which serialises the same flows.
    pub locks_rows: bool,
    /// Appended to a text column to compare it byte by byte, the same on both backends.
    pub binary_collation: &'static str,
    /// `position of needle in haystack` (1-based, 0 when absent): no wildcards.
    pub position_fn: &'static str,
    /// The due-date sort keys as the list indexes hold them (migration 0008), each as
    /// (key expression, the key of a task without a due date). That key sorts after every
    /// date in `due_first` (ascending) and before every date in `due_last` (descending),
    /// so those tasks come last in both directions.
    pub due_first: (&'static str, &'static str),
    pub due_last: (&'static str, &'static str),
    /// How a list's `q` finds the titles that contain a term.
    pub search: Search,
}

/// Substring search over folded titles, literal and case-insensitive on both backends.
#[derive(Debug, PartialEq, Eq)]
pub enum Search {
    /// `title_folded LIKE '%term%'` (wildcards escaped), served by a pg_trgm GiST index;
    /// the planner picks it or a sort index by how many titles match.
    Like,
    /// An FTS5 trigram index, kept by triggers. Terms under three characters have no
    /// trigram: those are found by a position test over the owner's tasks.
    Fts5Trigram,
}

pub const POSTGRES: Dialect = Dialect {
    placeholder: "$",
    locks_rows: true,
    binary_collation: " COLLATE \"C\"",
    position_fn: "strpos",
    due_first: (
        "COALESCE(due_date, 'infinity'::timestamptz)",
        "'infinity'::timestamptz",
    ),
    due_last: (
        "COALESCE(due_date, '-infinity'::timestamptz)",
        "'-infinity'::timestamptz",
    ),
    search: Search::Like,
};

pub const SQLITE: Dialect = Dialect {
    placeholder: "?",
    locks_rows: false,
    // SQLite's default collation (BINARY) already compares bytes.
    binary_collation: "",
    position_fn: "instr",
    // Timestamps are fixed-width text: '~' sorts after every digit, '' before anything.
    due_first: ("COALESCE(due_date, '~')", "'~'"),
    due_last: ("COALESCE(due_date, '')", "''"),
    search: Search::Fts5Trigram,
};

impl Backend {
    pub fn dialect(self) -> &'static Dialect {
        match self {
            Backend::Postgres => &POSTGRES,
            Backend::Sqlite => &SQLITE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sql {
    pub dialect: &'static Dialect,
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    pub fn new(backend: Backend) -> Self {
        Self {
            dialect: backend.dialect(),
            text: String::new(),
            params: Vec::new(),
        }
    }

    /// A statement written out by hand (placeholders in the backend's own style), for tests
    /// that set up states the API cannot reach.
    pub fn raw(backend: Backend, text: &str, params: Vec<Param>) -> Self {
        Self {
            dialect: backend.dialect(),
            text: text.to_owned(),
            params,
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `param`.
    pub fn bind(&mut self, param: Param) -> &mut Self {
        self.params.push(param);
        let n = self.params.len();
        self.text.push_str(self.dialect.placeholder);
        self.text.push_str(&n.to_string());
        self
    }

    /// Appends placeholders for `params`, comma-separated.
    pub fn bind_list(&mut self, params: impl IntoIterator<Item = Param>) -> &mut Self {
        for (i, p) in params.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(p);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        let mut pg = Sql::new(Backend::Postgres);
        pg.push("a = ").bind(Param::Int(1)).push(" AND b IN (");
        pg.bind_list([Param::Int(2), Param::Int(3)]).push(")");
        assert_eq!(pg.text, "a = $1 AND b IN ($2, $3)");
        let mut lite = Sql::new(Backend::Sqlite);
        lite.push("a = ").bind(Param::Int(1));
        assert_eq!(lite.text, "a = ?1");
    }
}
