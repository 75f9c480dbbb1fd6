//! List queries: which items of a collection match, in which order, and which page
//! of them is returned. Faces parse their own query syntax into a [`Query`] (the verb
//! face's `{page, pageSize, sort, filters, select, after}` is [`Query::from_verb`]);
//! [`Query::run`] evaluates it over the items of one read snapshot.
//!
//! Semantics, pinned so the faces agree with each other and with Feathers' memory
//! adapter (its matcher, sift, and its NeDB-derived sort):
//! - equality is JSON equality (numbers by value), and `null` also matches a missing
//!   field; `ne` and `nin` are their negations, so they match a missing field;
//! - `gt gte lt lte` compare within one JSON type only (numbers, strings by code
//!   point, booleans), so `{gt: 5}` never matches `"6"`;
//! - a test on a field holding an array passes when it passes on the array or on any
//!   of its elements (`{tags: "x"}` matches `tags: ["x", "y"]`), and `ne`/`nin` fail
//!   when any of them is the value;
//! - sorting orders types as missing < null < numbers < strings < booleans < arrays
//!   (element by element) < objects (member by member, in name order), and the
//!   item's key (its id) is always the last tie-break, so pages are stable.

use std::cmp::Ordering;

use ripplekv_core::Error;
use serde_json::{Map, Value};

/// The most items a page may hold.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: usize = 10;

/// An item as lists see it: its key's id text, and its document (with `id`, `_rev`).
pub type Listed = (String, Map<String, Value>);

/// A parsed list query.
#[derive(Debug, Clone, Default)]
pub struct Query {
    clauses: Vec<Clause>,
    sort: Vec<SortKey>,
    select: Option<Vec<String>>,
    /// Only items whose id (as in the key) sorts after this one.
    after: Option<String>,
    skip: usize,
    limit: usize,
}

/// One requirement of a query: a test of a field, or groups of them, any or all of
/// which must hold (`$or`, `$and`).
#[derive(Debug, Clone)]
enum Clause {
    Field(Condition),
    Any(Vec<Vec<Clause>>),
    All(Vec<Vec<Clause>>),
}

impl Clause {
    fn holds(&self, item: &Map<String, Value>) -> bool {
        match self {
            Clause::Field(condition) => condition.test.passes(field(item, &condition.path)),
            Clause::Any(groups) => groups
                .iter()
                .any(|group| group.iter().all(|clause| clause.holds(item))),
            Clause::All(groups) => groups
                .iter()
                .all(|group| group.iter().all(|clause| clause.holds(item))),
        }
    }
}

#[derive(Debug, Clone)]
struct Condition {
    path: Vec<String>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Prefix(String),
    Contains(Value),
    Exists(bool),
}

#[derive(Debug, Clone)]
struct SortKey {
    path: Vec<String>,
    descending: bool,
}

/// What a verb-face list answers besides its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageNumber {
    /// 1-based.
    pub page: usize,
    /// Items per page.
    pub page_size: usize,
}

impl Query {
    /// The verb face's query: `{page, pageSize, sort, filters, select, after}`, every
    /// member optional; anything else is 400.
    pub fn from_verb(query: &Map<String, Value>) -> Result<(Query, PageNumber), Error> {
        let mut parsed = Query::default();
        let mut page = 1;
        let mut page_size = DEFAULT_PAGE_SIZE;
        for (name, value) in query {
            match name.as_str() {
                "page" => {
                    page = count(value, "page")?;
                    if page == 0 {
                        return Err(Error::invalid("page counts from 1"));
                    }
                }
                "pageSize" => page_size = count(value, "pageSize")?.min(MAX_PAGE_SIZE),
                "sort" => parsed.sort = sort_keys(value)?,
                "filters" => parsed.clauses = conditions(value)?,
                "select" => parsed.select = Some(select(value)?),
                "after" => match value {
                    Value::String(after) => parsed.after = Some(after.clone()),
                    Value::Number(_) => parsed.after = Some(value.to_string()),
                    _ => return Err(Error::invalid("after must be an id")),
                },
                other => return Err(Error::invalid(format!("Unknown list option {other:?}"))),
            }
        }
        if parsed.after.is_some() && (page > 1 || !parsed.sort.is_empty()) {
            return Err(Error::invalid(
                "after pages in id order: give it without page or sort",
            ));
        }
        parsed.skip = (page - 1).saturating_mul(page_size);
        parsed.limit = page_size;
        Ok((parsed, PageNumber { page, page_size }))
    }

    /// A Feathers `find` query: `$limit $skip $sort $select $or $and` and field
    /// filters with `$in $nin $lt $lte $gt $gte $ne` (and this server's `$prefix
    /// $contains $exists`); any other `$` name is 400, as in Feathers' adapters.
    pub fn from_feathers(query: &Map<String, Value>) -> Result<Query, Error> {
        let mut parsed = Query {
            limit: DEFAULT_PAGE_SIZE,
            ..Query::default()
        };
        for (name, value) in query {
            match name.as_str() {
                "$limit" => parsed.limit = feathers_count(value, "$limit")?.min(MAX_PAGE_SIZE),
                "$skip" => parsed.skip = feathers_count(value, "$skip")?,
                "$sort" => parsed.sort = feathers_sort(value)?,
                "$select" => parsed.select = Some(select(value)?),
                _ => {}
            }
        }
        parsed.clauses = feathers_clauses(query, true)?;
        Ok(parsed)
    }

    /// Only the clauses of a Feathers query (for `get`, `patch`, `remove` by id).
    pub fn feathers_filter(query: &Map<String, Value>) -> Result<Query, Error> {
        Ok(Query {
            clauses: feathers_clauses(query, true)?,
            limit: 1,
            ..Query::default()
        })
    }

    /// Whether the query has any filter at all.
    pub fn has_filters(&self) -> bool {
        !self.clauses.is_empty()
    }

    /// Items skipped before the page.
    pub fn skip(&self) -> usize {
        self.skip
    }

    /// The page's size.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether one item passes the query's filters.
    pub fn accepts(&self, id: &str, item: &Map<String, Value>) -> bool {
        self.matches(&(id.to_owned(), item.clone()))
    }

    /// The item with only the fields the query selects.
    pub fn selected(&self, item: Map<String, Value>) -> Map<String, Value> {
        self.project(item)
    }

    /// Whether the item is in the list.
    fn matches(&self, (id, item): &Listed) -> bool {
        if self
            .after
            .as_ref()
            .is_some_and(|after| id.as_str() <= after.as_str())
        {
            return false;
        }
        self.clauses.iter().all(|clause| clause.holds(item))
    }

    /// The order of two items: the sort keys, then the id.
    fn order(&self, (a_id, a): &Listed, (b_id, b): &Listed) -> Ordering {
        for key in &self.sort {
            let ordering = compare(field(a, &key.path), field(b, &key.path));
            let ordering = if key.descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        a_id.as_bytes().cmp(b_id.as_bytes())
    }

    /// Evaluates the query over `items`: how many match, and the page of them.
    pub fn run(&self, items: impl IntoIterator<Item = Listed>) -> (usize, Vec<Map<String, Value>>) {
        let mut matching: Vec<Listed> = items
            .into_iter()
            .filter(|item| self.matches(item))
            .collect();
        let total = matching.len();
        let wanted = self.skip.saturating_add(self.limit).min(total);
        if wanted < total && wanted > 0 {
            // Only the first `wanted` need to be in order.
            matching.select_nth_unstable_by(wanted - 1, |a, b| self.order(a, b));
            matching.truncate(wanted);
        }
        matching.sort_by(|a, b| self.order(a, b));
        let page = matching
            .into_iter()
            .skip(self.skip)
            .take(self.limit)
            .map(|(_, item)| self.project(item))
            .collect();
        (total, page)
    }

    /// The item with only the selected fields (and always `id` and `_rev`).
    fn project(&self, item: Map<String, Value>) -> Map<String, Value> {
        match &self.select {
            None => item,
            Some(fields) => item
                .into_iter()
                .filter(|(name, _)| {
                    name == "id" || name == crate::REVISION_FIELD || fields.contains(name)
                })
                .collect(),
        }
    }
}

fn count(value: &Value, what: &str) -> Result<usize, Error> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Error::invalid(format!("{what} must be a non-negative integer")))
}

fn path(text: &str) -> Result<Vec<String>, Error> {
    if text.is_empty() || text.split('.').any(str::is_empty) {
        return Err(Error::invalid(format!("Invalid field path {text:?}")));
    }
    Ok(text.split('.').map(str::to_owned).collect())
}

/// `"-n"`, `["cat", "-n"]` or `{cat: 1, n: -1}` (members in the order given).
fn sort_keys(value: &Value) -> Result<Vec<SortKey>, Error> {
    let named = |text: &str| match text.strip_prefix('-') {
        Some(rest) => Ok(SortKey {
            path: path(rest)?,
            descending: true,
        }),
        None => Ok(SortKey {
            path: path(text.strip_prefix('+').unwrap_or(text))?,
            descending: false,
        }),
    };
    match value {
        Value::String(text) => Ok(vec![named(text)?]),
        Value::Array(names) => names
            .iter()
            .map(|name| {
                name.as_str()
                    .ok_or_else(|| Error::invalid("sort must list field names"))
                    .and_then(named)
            })
            .collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(name, direction)| directed(name, direction))
            .collect(),
        _ => Err(Error::invalid(
            "sort must be a field name, an array of them or an object of directions",
        )),
    }
}

/// A sort key from a field name and a direction: 1 or -1 (or their text).
fn directed(name: &str, direction: &Value) -> Result<SortKey, Error> {
    let direction = match direction {
        Value::String(text) => text.parse::<i64>().ok(),
        other => other.as_i64(),
    };
    let descending = match direction {
        Some(1) => false,
        Some(-1) => true,
        _ => return Err(Error::invalid("a sort direction is 1 or -1")),
    };
    Ok(SortKey {
        path: path(name)?,
        descending,
    })
}

fn select(value: &Value) -> Result<Vec<String>, Error> {
    value
        .as_array()
        .and_then(|names| {
            names
                .iter()
                .map(|name| name.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| Error::invalid("select must be an array of field names"))
}

/// `{f: v}` (equality) and `{f: {op: v, …}}`, all ANDed.
fn conditions(value: &Value) -> Result<Vec<Clause>, Error> {
    let Value::Object(filters) = value else {
        return Err(Error::invalid("filters must be an object"));
    };
    let mut clauses = Vec::new();
    for (name, wanted) in filters {
        let path = path(name)?;
        match wanted {
            Value::Object(tests) => {
                for (operator, operand) in tests {
                    clauses.push(Clause::Field(Condition {
                        path: path.clone(),
                        test: Test::parse(operator, operand)?,
                    }));
                }
            }
            other => clauses.push(Clause::Field(Condition {
                path,
                test: Test::Eq(other.clone()),
            })),
        }
    }
    Ok(clauses)
}

/// A Feathers count (`$limit`, `$skip`): a non-negative integer, or its decimal text.
fn feathers_count(value: &Value, what: &str) -> Result<usize, Error> {
    match value {
        Value::String(text) => text.parse().ok(),
        other => other.as_u64().and_then(|n| usize::try_from(n).ok()),
    }
    .ok_or_else(|| Error::invalid(format!("{what} must be a non-negative integer")))
}

/// `$sort: {field: 1 | -1, …}` (numbers or their text), in the order given.
fn feathers_sort(value: &Value) -> Result<Vec<SortKey>, Error> {
    let Value::Object(fields) = value else {
        return Err(Error::invalid("$sort must be an object of directions"));
    };
    fields
        .iter()
        .map(|(name, direction)| directed(name, direction))
        .collect()
}

/// The filters of a Feathers query: every member but the paging ones (at the top).
fn feathers_clauses(query: &Map<String, Value>, top: bool) -> Result<Vec<Clause>, Error> {
    let mut clauses = Vec::new();
    for (name, value) in query {
        match name.as_str() {
            "$limit" | "$skip" | "$sort" | "$select" if top => {}
            "$or" | "$and" => {
                let groups = value
                    .as_array()
                    .filter(|groups| !groups.is_empty())
                    .ok_or_else(|| Error::invalid(format!("{name} takes an array of queries")))?
                    .iter()
                    .map(|group| match group {
                        Value::Object(group) => feathers_clauses(group, false),
                        _ => Err(Error::invalid(format!("{name} takes an array of queries"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                clauses.push(if name == "$or" {
                    Clause::Any(groups)
                } else {
                    Clause::All(groups)
                });
            }
            other if other.starts_with('$') => {
                return Err(Error::invalid(format!("Invalid query parameter {other}")));
            }
            field_name => {
                let path = path(field_name)?;
                match value {
                    Value::Object(tests) if tests.keys().any(|key| key.starts_with('$')) => {
                        for (operator, operand) in tests {
                            if !operator.starts_with('$') {
                                return Err(Error::invalid(format!(
                                    "Invalid query parameter {operator}"
                                )));
                            }
                            let test = match operator.as_str() {
                                "$in" | "$nin" | "$lt" | "$lte" | "$gt" | "$gte" | "$ne"
                                | "$prefix" | "$contains" | "$exists" => {
                                    Test::parse(operator, operand)?
                                }
                                _ => {
                                    return Err(Error::invalid(format!(
                                        "Invalid query parameter {operator}"
                                    )))
                                }
                            };
                            clauses.push(Clause::Field(Condition {
                                path: path.clone(),
                                test,
                            }));
                        }
                    }
                    other => clauses.push(Clause::Field(Condition {
                        path,
                        test: Test::Eq(other.clone()),
                    })),
                }
            }
        }
    }
    Ok(clauses)
}

impl Test {
    fn parse(operator: &str, operand: &Value) -> Result<Self, Error> {
        let list = || {
            operand
                .as_array()
                .cloned()
                .ok_or_else(|| Error::invalid(format!("{operator} takes an array")))
        };
        Ok(match operator.strip_prefix('$').unwrap_or(operator) {
            "eq" => Test::Eq(operand.clone()),
            "ne" => Test::Ne(operand.clone()),
            "gt" => Test::Gt(operand.clone()),
            "gte" => Test::Gte(operand.clone()),
            "lt" => Test::Lt(operand.clone()),
            "lte" => Test::Lte(operand.clone()),
            "in" => Test::In(list()?),
            "nin" => Test::Nin(list()?),
            "prefix" => Test::Prefix(
                operand
                    .as_str()
                    .ok_or_else(|| Error::invalid("prefix takes a string"))?
                    .to_owned(),
            ),
            "contains" => Test::Contains(operand.clone()),
            "exists" => Test::Exists(
                operand
                    .as_bool()
                    .ok_or_else(|| Error::invalid("exists takes true or false"))?,
            ),
            _ => {
                return Err(Error::invalid(format!(
                    "Unknown filter operator {operator:?}"
                )))
            }
        })
    }

    /// Whether the field's value passes: for an array, the array or any element.
    fn passes(&self, found: Option<&Value>) -> bool {
        let any = |test: &dyn Fn(Option<&Value>) -> bool| {
            test(found)
                || matches!(found, Some(Value::Array(elements)) if elements.iter().any(|e| test(Some(e))))
        };
        let ordered = |wanted: &Value, accept: fn(Ordering) -> bool| {
            any(&|found| {
                found
                    .and_then(|found| same_type_order(found, wanted))
                    .is_some_and(accept)
            })
        };
        match self {
            Test::Eq(wanted) => any(&|found| equals(found, wanted)),
            Test::Ne(wanted) => !any(&|found| equals(found, wanted)),
            Test::Gt(wanted) => ordered(wanted, Ordering::is_gt),
            Test::Gte(wanted) => ordered(wanted, Ordering::is_ge),
            Test::Lt(wanted) => ordered(wanted, Ordering::is_lt),
            Test::Lte(wanted) => ordered(wanted, Ordering::is_le),
            Test::In(list) => any(&|found| list.iter().any(|wanted| equals(found, wanted))),
            Test::Nin(list) => !any(&|found| list.iter().any(|wanted| equals(found, wanted))),
            Test::Prefix(prefix) => found
                .and_then(Value::as_str)
                .is_some_and(|text| text.starts_with(prefix.as_str())),
            Test::Contains(wanted) => match (found, wanted) {
                (Some(Value::Array(elements)), _) => {
                    elements.iter().any(|element| json_equal(element, wanted))
                }
                (Some(Value::String(text)), Value::String(part)) => text.contains(part.as_str()),
                _ => false,
            },
            Test::Exists(wanted) => found.is_some() == *wanted,
        }
    }
}

/// The value at a dotted path of an item, if any.
fn field<'a>(item: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(item.get(first)?, |value, name| value.as_object()?.get(name))
}

/// Equality of a field with a wanted value: `null` also matches a missing field.
fn equals(found: Option<&Value>, wanted: &Value) -> bool {
    match found {
        Some(found) => json_equal(found, wanted),
        None => wanted.is_null(),
    }
}

/// JSON equality, numbers by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(name, value)| y.get(name).is_some_and(|other| json_equal(value, other)))
        }
        _ => a == b,
    }
}

/// The order of two values of the same comparable type (numbers, strings, booleans).
fn same_type_order(found: &Value, wanted: &Value) -> Option<Ordering> {
    match (found, wanted) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The sort order across types: missing < null < numbers < strings < booleans <
/// arrays (element by element, then the shorter first) < objects (member values in
/// the order of their sorted names, then the one with fewer members first).
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(value: Option<&Value>) -> u8 {
        match value {
            None => 0,
            Some(Value::Null) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(Value::Bool(_)) => 4,
            Some(Value::Array(_)) => 5,
            Some(Value::Object(_)) => 6,
        }
    }
    match (a, b) {
        (Some(Value::Array(x)), Some(Value::Array(y))) => x
            .iter()
            .zip(y)
            .map(|(x, y)| compare(Some(x), Some(y)))
            .find(|ordering| ordering.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let (mut x_names, mut y_names): (Vec<_>, Vec<_>) =
                (x.keys().collect(), y.keys().collect());
            x_names.sort();
            y_names.sort();
            x_names
                .iter()
                .zip(&y_names)
                .map(|(xn, yn)| compare(x.get(*xn), y.get(*yn)))
                .find(|ordering| ordering.is_ne())
                .unwrap_or_else(|| x.len().cmp(&y.len()))
        }
        (Some(x), Some(y)) => same_type_order(x, y).unwrap_or_else(|| rank(a).cmp(&rank(b))),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Listed> {
        [
            (
                "a",
                json!({"id": "a", "n": 3, "tag": "red", "tags": ["x", "y"], "deep": {"v": 1}}),
            ),
            ("b", json!({"id": "b", "n": 1, "tag": "blue"})),
            ("c", json!({"id": "c", "n": "2", "tag": null})),
            ("d", json!({"id": "d", "n": 2.0, "tags": ["y"]})),
            ("e", json!({"id": "e", "tag": "reddish"})),
        ]
        .into_iter()
        .map(|(id, item)| (id.to_owned(), item.as_object().unwrap().clone()))
        .collect()
    }

    fn ids(query: Value) -> Vec<String> {
        let (query, _) = Query::from_verb(query.as_object().unwrap()).unwrap();
        let (_, page) = query.run(items());
        page.iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn filters() {
        assert_eq!(ids(json!({"filters": {"tag": "red"}})), ["a"]);
        assert_eq!(
            ids(json!({"filters": {"tag": null}})),
            ["c", "d"],
            "null matches missing"
        );
        assert_eq!(
            ids(json!({"filters": {"n": {"gt": 1}}})),
            ["a", "d"],
            "numbers only"
        );
        assert_eq!(ids(json!({"filters": {"n": {"$gte": 2, "lt": 3}}})), ["d"]);
        assert_eq!(
            ids(json!({"filters": {"n": {"ne": 2}}})),
            ["a", "b", "c", "e"]
        );
        assert_eq!(ids(json!({"filters": {"n": {"in": [1, "2"]}}})), ["b", "c"]);
        assert_eq!(
            ids(json!({"filters": {"tag": {"prefix": "red"}}})),
            ["a", "e"]
        );
        assert_eq!(
            ids(json!({"filters": {"tags": {"contains": "y"}}})),
            ["a", "d"]
        );
        assert_eq!(ids(json!({"filters": {"tag": {"contains": "dd"}}})), ["e"]);
        assert_eq!(
            ids(json!({"filters": {"tags": {"exists": false}}})),
            ["b", "c", "e"]
        );
        assert_eq!(ids(json!({"filters": {"deep.v": 1}})), ["a"]);
        let unknown = json!({"filters": {"n": {"$regex": "x"}}});
        assert!(Query::from_verb(unknown.as_object().unwrap()).is_err());
    }

    #[test]
    fn sorting_and_paging() {
        // missing < null < numbers < strings, the id breaking ties.
        assert_eq!(ids(json!({"sort": "n"})), ["e", "b", "d", "a", "c"]);
        assert_eq!(ids(json!({"sort": "-n"})), ["c", "a", "d", "b", "e"]);
        assert_eq!(
            ids(json!({"sort": {"tag": 1, "n": -1}})),
            ["d", "c", "b", "a", "e"]
        );
        assert_eq!(
            ids(json!({"sort": ["tag", "-n"]})),
            ["d", "c", "b", "a", "e"]
        );
        assert_eq!(ids(json!({"pageSize": 2, "page": 2})), ["c", "d"]);
        assert_eq!(
            ids(json!({"pageSize": 2, "page": 2, "sort": "-id"})),
            ["c", "b"]
        );
        assert_eq!(ids(json!({"after": "b", "pageSize": 2})), ["c", "d"]);
        assert!(ids(json!({"pageSize": 0})).is_empty());
        let (query, number) =
            Query::from_verb(json!({"pageSize": 5000}).as_object().unwrap()).unwrap();
        assert_eq!(number.page_size, MAX_PAGE_SIZE);
        assert_eq!(query.run(items()).0, 5);
    }

    #[test]
    fn select_keeps_the_id_and_revision() {
        let (query, _) = Query::from_verb(json!({"select": ["tag"]}).as_object().unwrap()).unwrap();
        let mut with_rev = items();
        with_rev[0].1.insert("_rev".into(), json!(4));
        let (_, page) = query.run(with_rev);
        assert_eq!(
            Value::Object(page[0].clone()),
            json!({"id": "a", "tag": "red", "_rev": 4})
        );
    }
}
