//! A [`Select`] as SQL text for one dialect, with the values bound to its placeholders. User queries are
//! wrapped as a subquery, so that the incremental criteria apply to their rows whatever WHERE clause they
//! carry (Confluent's connector appends its WHERE to the query's text, which breaks on a query that has
//! one: confluentinc/kafka-connect-jdbc#566).

use crate::jdbc::database::{Criteria, Relation, Select};
use crate::jdbc::timestamp::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Int(i64),
    Timestamp(Timestamp),
}

/// SQL text and its binds, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// An identifier in double quotes (both dialects), a dotted name as `"schema"."table"`.
pub fn quote(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// The relation a select reads, as its FROM clause.
pub fn from(relation: &Relation) -> String {
    match relation {
        Relation::Table(table) => quote(table),
        Relation::Query(query) => {
            format!("({}) AS sluice_query", query.trim().trim_end_matches(';'))
        }
    }
}

pub fn render(select: &Select, dialect: Dialect) -> Statement {
    let mut statement = Statement {
        sql: format!("SELECT * FROM {}", from(&select.relation)),
        binds: Vec::new(),
    };
    let bind = |statement: &mut Statement, value: Bind| {
        statement.binds.push(value);
        match dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${}", statement.binds.len()),
        }
    };
    let (condition, order) = match &select.criteria {
        Criteria::All => (None, None),
        Criteria::Incrementing { column, after } => {
            let p = bind(&mut statement, Bind::Int(*after));
            let inc = quote(column);
            (Some(format!("{inc} > {p}")), Some(format!("{inc} ASC")))
        }
        Criteria::Timestamp {
            columns,
            after,
            before,
        } => {
            let ts = timestamp_expression(columns);
            let mut condition = Vec::new();
            if let Some(after) = after {
                condition.push(format!(
                    "{ts} > {}",
                    bind(&mut statement, Bind::Timestamp(*after))
                ));
            }
            condition.push(format!(
                "{ts} < {}",
                bind(&mut statement, Bind::Timestamp(*before))
            ));
            (Some(condition.join(" AND ")), Some(format!("{ts} ASC")))
        }
        Criteria::TimestampEquals { columns, at } => {
            let ts = timestamp_expression(columns);
            let p = bind(&mut statement, Bind::Timestamp(*at));
            (Some(format!("{ts} = {p}")), None)
        }
        Criteria::TimestampIncrementing {
            timestamp_columns,
            incrementing,
            after,
            before,
        } => {
            let ts = timestamp_expression(timestamp_columns);
            let inc = quote(incrementing);
            let end = bind(&mut statement, Bind::Timestamp(*before));
            let condition = match after {
                Some((at, last)) => {
                    let same = bind(&mut statement, Bind::Timestamp(*at));
                    let last = bind(&mut statement, Bind::Int(*last));
                    let later = bind(&mut statement, Bind::Timestamp(*at));
                    format!(
                        "{ts} < {end} AND (({ts} = {same} AND {inc} > {last}) OR {ts} > {later})"
                    )
                }
                None => format!("{ts} < {end}"),
            };
            (Some(condition), Some(format!("{ts} ASC, {inc} ASC")))
        }
    };
    if let Some(condition) = condition {
        statement.sql.push_str(" WHERE ");
        statement.sql.push_str(&condition);
    }
    if let Some(order) = order {
        statement.sql.push_str(" ORDER BY ");
        statement.sql.push_str(&order);
    }
    if let Some(limit) = select.limit {
        statement.sql.push_str(&format!(" LIMIT {limit}"));
    }
    if !select.suffix.trim().is_empty() {
        statement.sql.push(' ');
        statement.sql.push_str(select.suffix.trim());
    }
    statement
}

/// A row's timestamp: its one timestamp column, or the first non-null of several.
fn timestamp_expression(columns: &[String]) -> String {
    match columns {
        [one] => quote(one),
        many => format!(
            "COALESCE({})",
            many.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(relation: Relation, criteria: Criteria) -> Select {
        Select {
            relation,
            criteria,
            suffix: String::new(),
            limit: Some(100),
        }
    }

    #[test]
    fn timestamp_and_incrementing_keyset_in_both_dialects() {
        let criteria = Criteria::TimestampIncrementing {
            timestamp_columns: vec!["updated_at".into(), "created_at".into()],
            incrementing: "id".into(),
            after: Some((Timestamp(5), 7)),
            before: Timestamp(9),
        };
        let sqlite = render(
            &select(Relation::Table("orders".into()), criteria.clone()),
            Dialect::Sqlite,
        );
        assert_eq!(
            sqlite.sql,
            "SELECT * FROM \"orders\" WHERE COALESCE(\"updated_at\", \"created_at\") < ? AND ((COALESCE(\"updated_at\", \"created_at\") = ? AND \"id\" > ?) OR COALESCE(\"updated_at\", \"created_at\") > ?) ORDER BY COALESCE(\"updated_at\", \"created_at\") ASC, \"id\" ASC LIMIT 100"
        );
        assert_eq!(
            sqlite.binds,
            [
                Bind::Timestamp(Timestamp(9)),
                Bind::Timestamp(Timestamp(5)),
                Bind::Int(7),
                Bind::Timestamp(Timestamp(5))
            ]
        );
        let postgres = render(
            &select(Relation::Table("public.orders".into()), criteria),
            Dialect::Postgres,
        );
        assert!(
            postgres
                .sql
                .starts_with("SELECT * FROM \"public\".\"orders\" WHERE"),
            "{}",
            postgres.sql
        );
        assert!(
            postgres.sql.contains("= $2 AND \"id\" > $3) OR"),
            "{}",
            postgres.sql
        );
    }

    #[test]
    fn a_query_with_its_own_where_is_a_subquery() {
        let mut s = select(
            Relation::Query("SELECT * FROM orders WHERE status = 'paid';".into()),
            Criteria::Incrementing {
                column: "id".into(),
                after: 41,
            },
        );
        s.suffix = "FOR SHARE".into();
        assert_eq!(
            render(&s, Dialect::Postgres).sql,
            "SELECT * FROM (SELECT * FROM orders WHERE status = 'paid') AS sluice_query WHERE \"id\" > $1 ORDER BY \"id\" ASC LIMIT 100 FOR SHARE"
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }
}
