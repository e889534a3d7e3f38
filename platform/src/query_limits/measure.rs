//! The measure itself: one walk over the document in which each fragment
//! is measured once, the first time it is spread, and its summary reused
//! after (a fragment's measures do not depend on where it is spread: the
//! cost of its fields scales with the lists above the spread by one
//! multiplication). Every sum saturates, so a fan-out of any width is a
//! large number, not an overflow.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Value, Variables};

use super::{ListSize, Measured, QueryLimiter, Reason, Refusal, MAX_NESTING};

/// The measures of a selection set, relative to it.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    cost: u64,
    fields: u64,
    aliases: u64,
    depth: u64,
    /// How deep selections nest below it, as async-graphql's recursion check counts.
    nesting: u64,
}

impl Summary {
    fn and(self, other: Summary) -> Summary {
        Summary {
            cost: self.cost.saturating_add(other.cost),
            fields: self.fields.saturating_add(other.fields),
            aliases: self.aliases.saturating_add(other.aliases),
            depth: self.depth.max(other.depth),
            nesting: self.nesting.max(other.nesting),
        }
    }

    /// The summary seen from one level up (a field's, a spread's or an inline fragment's set).
    fn nested(self) -> Summary {
        Summary { nesting: self.nesting + 1, ..self }
    }
}

struct Walk<'a> {
    limiter: &'a QueryLimiter,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// The default values of the variables of the operation being measured
    /// (execution uses them for variables a request leaves out).
    defaults: HashMap<&'a str, &'a Value>,
    /// Measured fragments; `None` while one is being measured.
    fragments: HashMap<&'a str, Option<Summary>>,
    /// The fragments being measured, outermost first (to name a cycle).
    path: Vec<&'a str>,
}

pub(super) fn measure(
    limiter: &QueryLimiter,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Result<Measured, Refusal> {
    let limits = limiter.limits;
    let written: u64 = document.operations.iter().map(|(_, operation)| written(&operation.node.selection_set.node)).sum::<u64>()
        + document.fragments.values().map(|fragment| written(&fragment.node.selection_set.node)).sum::<u64>();
    if written > limits.max_fields {
        return Err(Refusal::too_complex(
            Reason::Size,
            written,
            limits.max_fields,
            format!("the document has {written} selections; at most {} are allowed", limits.max_fields),
        ));
    }
    let mut walk = Walk { limiter, document, variables, defaults: HashMap::new(), fragments: HashMap::new(), path: Vec::new() };
    let mut expanded = Summary::default();
    let (mut selected, mut costliest) = (None, 0);
    for (name, operation) in document.operations.iter() {
        // Each operation with its own defaults (its fragments measured again).
        walk.defaults = operation
            .node
            .variable_definitions
            .iter()
            .filter_map(|definition| Some((definition.node.name.node.as_str(), definition.node.default_value()?)))
            .collect();
        walk.fragments.clear();
        let summary = walk.set(&operation.node.selection_set.node, 0)?;
        expanded = expanded.and(summary);
        check_size(&expanded, limits.max_fields)?;
        check_operation(&summary, limiter)?;
        costliest = costliest.max(summary.cost);
        if name.map(|name| name.as_str()) == operation_name {
            selected = Some(summary.cost);
        }
    }
    // Fragments no operation uses (measured already or not) are measured too: validation walks them as well.
    walk.defaults.clear();
    for name in document.fragments.keys() {
        let summary = walk.fragment(name.as_str(), 0)?;
        check_size(&summary, limits.max_fields)?;
    }
    Ok(Measured { cost: selected.unwrap_or(costliest) })
}

fn check_size(summary: &Summary, max_fields: u64) -> Result<(), Refusal> {
    if summary.nesting > MAX_NESTING as u64 {
        return Err(too_deep(summary.nesting));
    }
    if summary.fields > max_fields {
        let fields = summary.fields;
        return Err(Refusal::too_complex(
            Reason::Size,
            fields,
            max_fields,
            format!("the query has {fields} fields once its fragments are expanded; at most {max_fields} are allowed"),
        ));
    }
    Ok(())
}

fn check_operation(summary: &Summary, limiter: &QueryLimiter) -> Result<(), Refusal> {
    let limits = limiter.limits;
    let (depth, aliases, cost) = (summary.depth, summary.aliases, summary.cost);
    if depth > limits.max_depth as u64 {
        let message = format!("the query is nested {depth} fields deep; at most {} are allowed", limits.max_depth);
        return Err(Refusal::too_complex(Reason::Depth, depth, limits.max_depth as u64, message));
    }
    if aliases > limits.max_aliases {
        let message = format!("the query has {aliases} aliases; at most {} are allowed", limits.max_aliases);
        return Err(Refusal::too_complex(Reason::Aliases, aliases, limits.max_aliases, message));
    }
    if cost > limits.max_cost {
        let message = format!(
            "the query costs {cost} (each field 1, times the size of each list above it); at most {} is allowed",
            limits.max_cost
        );
        return Err(Refusal::too_complex(Reason::Cost, cost, limits.max_cost, message));
    }
    Ok(())
}

fn too_deep(nesting: u64) -> Refusal {
    Refusal::too_complex(
        Reason::Depth,
        nesting,
        MAX_NESTING as u64,
        format!("the query nests selections {nesting} deep (fields, fragments and inline fragments); at most {MAX_NESTING} are allowed"),
    )
}

/// The selections of a set as written, fragments not expanded.
fn written(set: &SelectionSet) -> u64 {
    set.items
        .iter()
        .map(|selection| {
            1 + match &selection.node {
                Selection::Field(field) => written(&field.node.selection_set.node),
                Selection::InlineFragment(inline) => written(&inline.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            }
        })
        .sum()
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<Summary, Refusal> {
        if nesting > MAX_NESTING {
            return Err(too_deep(nesting as u64));
        }
        let mut total = Summary::default();
        for selection in &set.items {
            let summary = match &selection.node {
                Selection::Field(field) => self.field(&field.node, nesting)?,
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), nesting + 1)?.nested()
                }
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set.node, nesting + 1)?.nested(),
            };
            total = total.and(summary);
        }
        Ok(total)
    }

    fn field(&mut self, field: &'a Field, nesting: usize) -> Result<Summary, Refusal> {
        let children = if field.selection_set.node.items.is_empty() {
            Summary::default()
        } else {
            self.set(&field.selection_set.node, nesting + 1)?.nested()
        };
        let size = self.list_size(field)?;
        // Introspection is as deep as the type references it follows (the
        // playground's query nests `ofType` eight times) and as large as the
        // schema, which no client controls: its depth does not count, its
        // fields and nesting do.
        let introspection = matches!(field.name.node.as_str(), "__schema" | "__type");
        Ok(Summary {
            cost: size.saturating_mul(children.cost).saturating_add(1),
            fields: children.fields.saturating_add(1),
            aliases: children.aliases.saturating_add(u64::from(field.alias.is_some())),
            depth: if introspection { 1 } else { children.depth + 1 },
            nesting: children.nesting,
        })
    }

    fn fragment(&mut self, name: &'a str, nesting: usize) -> Result<Summary, Refusal> {
        match self.fragments.get(name) {
            Some(Some(summary)) => return Ok(*summary),
            Some(None) => {
                let start = self.path.iter().position(|measuring| *measuring == name).unwrap_or(0);
                let cycle = self.path[start..].iter().copied().chain([name]).map(str::to_owned).collect();
                return Err(Refusal::FragmentCycle(cycle));
            }
            None => {}
        }
        // An unknown fragment is left to validation, which names it.
        let Some(definition) = self.document.fragments.get(name) else { return Ok(Summary::default()) };
        self.fragments.insert(name, None);
        self.path.push(name);
        let summary = self.set(&definition.node.selection_set.node, nesting)?;
        self.path.pop();
        self.fragments.insert(name, Some(summary));
        Ok(summary)
    }

    /// How many times the field's selections are answered: 1 unless it is a list.
    fn list_size(&self, field: &Field) -> Result<u64, Refusal> {
        let Some(list) = self.limiter.model.list(field.name.node.as_str()) else { return Ok(1) };
        match list {
            ListSize::Slice { argument, default, max } => {
                let first = match self.argument(field, argument) {
                    Value::Number(number) => number.as_i64(),
                    _ => None,
                };
                Ok(first.map_or(default, |first| first.clamp(0, max as i64) as u64))
            }
            ListSize::PerElement { argument, max } => {
                // A single value stands for a list of one.
                let elements = match self.argument(field, argument) {
                    Value::List(items) => items.len() as u64,
                    Value::Null => 0,
                    _ => 1,
                };
                if elements > max {
                    let message = format!("{}({argument}:) has {elements} elements; at most {max} are allowed", field.name.node);
                    return Err(Refusal::too_complex(Reason::ListSize, elements, max, message));
                }
                Ok(elements)
            }
        }
    }

    /// An argument's value with variables substituted: the request's, else
    /// the operation's default, else null.
    fn argument(&self, field: &Field, name: &str) -> Value {
        field.get_argument(name).map_or(Value::Null, |value| {
            value
                .node
                .clone()
                .into_const_with(|variable| {
                    let value = self.variables.get(&variable).or_else(|| self.defaults.get(variable.as_str()).copied());
                    Ok::<_, ()>(value.cloned().unwrap_or(Value::Null))
                })
                .unwrap_or(Value::Null)
        })
    }
}
