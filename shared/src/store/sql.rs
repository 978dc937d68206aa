//! A small SQL builder for statements whose text both backends share: it numbers
//! placeholders in each dialect's style (`$1` / `?1`) and keeps the values as [`Param`]s,
//! which each backend binds in its own types (timestamps are `timestamptz` on Postgres and
//! fixed-width text on SQLite). Backend differences in the text itself are spelled out
//! where they occur, via [`Sql::dialect`].

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

#[derive(Debug, Clone)]
pub struct Sql {
    pub dialect: Backend,
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    pub fn new(dialect: Backend) -> Self {
        Self {
            dialect,
            text: String::new(),
            params: Vec::new(),
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
        match self.dialect {
            Backend::Postgres => self.text.push_str(&format!("${n}")),
            Backend::Sqlite => self.text.push_str(&format!("?{n}")),
        }
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

    /// Byte-order comparison of text, the same on both backends.
    pub fn binary_collation(&self) -> &'static str {
        match self.dialect {
            Backend::Postgres => " COLLATE \"C\"",
            Backend::Sqlite => "",
        }
    }

    /// `position of needle in haystack` (1-based, 0 when absent): no wildcards.
    pub fn position_fn(&self) -> &'static str {
        match self.dialect {
            Backend::Postgres => "strpos",
            Backend::Sqlite => "instr",
        }
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
