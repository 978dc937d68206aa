//! The statements a migration outside a transaction (`-- no-transaction`, Postgres) may
//! hold: each one safe to run again after a run that failed half-way, and none that takes a
//! lock blocking reads or writes of a table for long. Anything else is refused before any
//! of it runs ([`parse`]).

/// One statement of such a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The statement as written.
    pub(crate) sql: String,
    /// The same, to run inside a transaction instead (`CONCURRENTLY` left out): where no
    /// session is to be had, behind a proxy that pools by transaction.
    pub(crate) in_a_transaction: String,
    /// The index it builds concurrently, which a failed build leaves behind invalid.
    pub(crate) builds: Option<String>,
}

/// What such a migration must be made of.
pub(crate) const ALLOWED: &str = "a migration outside a transaction (-- no-transaction) must \
     be made of CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON table …, DROP INDEX \
     CONCURRENTLY IF EXISTS name, CREATE EXTENSION IF NOT EXISTS name and ALTER TABLE table \
     ALTER COLUMN column SET STATISTICS n statements, with plain names, no block comments and \
     no dollar quotes";

/// The statements of `sql`, in order, when every one is of the forms of [`ALLOWED`]; `None`
/// otherwise.
pub(crate) fn parse(sql: &str) -> Option<Vec<Statement>> {
    let statements: Vec<Statement> = split(sql)?
        .iter()
        .map(|text| statement(text))
        .collect::<Option<_>>()?;
    (!statements.is_empty()).then_some(statements)
}

/// `sql` split into statements at the semicolons outside quotes, comments left out.
/// `None` for what this does not read exactly: a block comment, a dollar quote, a
/// backslash, an unterminated quote.
fn split(sql: &str) -> Option<Vec<String>> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote = None;
    while let Some(c) = chars.next() {
        // No backslash anywhere: an escape string (E'…\'…') would end elsewhere than here.
        if c == '\\' {
            return None;
        }
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                    current.push(' ');
                }
                '/' if chars.peek() == Some(&'*') => return None,
                '$' => return None,
                ';' => statements.push(std::mem::take(&mut current)),
                c => current.push(c),
            },
        }
    }
    if quote.is_some() {
        return None;
    }
    statements.push(current);
    Some(
        statements
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// A plain, unqualified, unquoted name.
fn plain(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `text` without its `n`th word (counted from 0), the rest exactly as written.
fn without_word(text: &str, n: usize) -> String {
    let mut words = text
        .char_indices()
        .filter(|&(i, c)| {
            !c.is_whitespace()
                && text[..i]
                    .chars()
                    .next_back()
                    .is_none_or(char::is_whitespace)
        })
        .map(|(i, _)| i);
    let Some(start) = words.nth(n) else {
        return text.to_owned();
    };
    let end = words.next().unwrap_or(text.len());
    format!("{}{}", &text[..start], &text[end..])
}

/// One statement, if it is of an allowed form.
fn statement(text: &str) -> Option<Statement> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let keywords = |at: usize, expected: &[&str]| {
        expected
            .iter()
            .enumerate()
            .all(|(i, word)| upper.get(at + i).is_some_and(|w| w == word))
    };
    let without = |at: usize| without_word(text, at);
    let plain_at = |at: usize| words.get(at).is_some_and(|w| plain(w));
    let done = |in_a_transaction: String, builds: Option<String>| Statement {
        sql: text.to_owned(),
        in_a_transaction,
        builds,
    };

    if keywords(0, &["CREATE"]) {
        let unique = usize::from(keywords(1, &["UNIQUE"]));
        if keywords(
            1 + unique,
            &["INDEX", "CONCURRENTLY", "IF", "NOT", "EXISTS"],
        ) {
            let name = 6 + unique;
            let table = words.get(name + 2)?.split('(').next().unwrap_or_default();
            return (plain_at(name) && keywords(name + 1, &["ON"]) && plain(table))
                .then(|| done(without(2 + unique), Some(words[name].to_owned())));
        }
        if keywords(1, &["EXTENSION", "IF", "NOT", "EXISTS"]) && words.len() == 6 {
            return plain_at(5).then(|| done(text.to_owned(), None));
        }
        return None;
    }
    if keywords(0, &["DROP", "INDEX", "CONCURRENTLY", "IF", "EXISTS"]) && words.len() == 6 {
        return plain_at(5).then(|| done(without(2), None));
    }
    if keywords(0, &["ALTER", "TABLE"])
        && keywords(3, &["ALTER", "COLUMN"])
        && keywords(6, &["SET", "STATISTICS"])
        && words.len() == 9
    {
        let n = words[8].parse::<u16>().is_ok();
        return (plain_at(2) && plain_at(5) && n).then(|| done(text.to_owned(), None));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_rerunnable_statements_that_block_nobody_run_outside_a_transaction() {
        for (sql, builds) in [
            (
                "-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title ON tasks (title);\n",
                Some(vec![Some("tasks_title")]),
            ),
            (
                "create unique index concurrently if not exists t_v_key on t(v)",
                Some(vec![Some("t_v_key")]),
            ),
            (
                "-- several; each one rerunnable\n\
                 CREATE EXTENSION IF NOT EXISTS pg_trgm;\n\
                 ALTER TABLE tasks ALTER COLUMN title_folded SET STATISTICS 1000;\n\
                 CREATE INDEX CONCURRENTLY IF NOT EXISTS t_title ON tasks (owner_id, title COLLATE \"C\", id); -- a comment; with a semicolon\n\
                 CREATE INDEX CONCURRENTLY IF NOT EXISTS t_due ON tasks (COALESCE(due_date, 'infinity;'::timestamptz));\n\
                 DROP INDEX CONCURRENTLY IF EXISTS t_old;\n",
                Some(vec![None, None, Some("t_title"), Some("t_due"), None]),
            ),
            (
                "CREATE INDEX CONCURRENTLY tasks_title ON tasks (title)",
                None,
            ),
            (
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"My Idx\" ON tasks (title)",
                None,
            ),
            (
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON audit.t (x)",
                None,
            ),
            (
                "/* first */ CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (x)",
                None,
            ),
            (
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (x); DROP TABLE t",
                None,
            ),
            ("CREATE INDEX IF NOT EXISTS i ON t (x)", None),
            ("DROP INDEX CONCURRENTLY i", None),
            ("DROP INDEX CONCURRENTLY IF EXISTS i, j", None),
            ("DROP INDEX IF EXISTS i", None),
            ("CREATE EXTENSION pg_trgm", None),
            ("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA x", None),
            ("ALTER TABLE t ALTER COLUMN c SET STATISTICS lots", None),
            ("ALTER TABLE t ADD COLUMN x int", None),
            ("DO $$ BEGIN END $$", None),
            (
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t ((x || ';))",
                None,
            ),
            ("-- nothing but a comment\n", None),
            (
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t ((x || E'\\'; DROP TABLE t; --'))",
                None,
            ),
        ] {
            let parsed = parse(sql);
            let names = parsed
                .as_ref()
                .map(|s| s.iter().map(|s| s.builds.as_deref()).collect::<Vec<_>>());
            assert_eq!(names, builds, "{sql}");
        }
    }

    #[test]
    fn in_a_transaction_the_same_statements_go_without_concurrently() {
        let parsed = parse(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS k ON t (v);\n\
             DROP INDEX CONCURRENTLY IF EXISTS old;\n\
             CREATE EXTENSION IF NOT EXISTS pg_trgm",
        )
        .unwrap_or_default();
        let sql: Vec<&str> = parsed.iter().map(|s| s.in_a_transaction.as_str()).collect();
        assert_eq!(
            sql,
            [
                "CREATE UNIQUE INDEX IF NOT EXISTS k ON t (v)",
                "DROP INDEX IF EXISTS old",
                "CREATE EXTENSION IF NOT EXISTS pg_trgm"
            ]
        );
    }
}
