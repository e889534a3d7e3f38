//! Generated documents as trees, and how a tree is written out as a
//! GraphQL request: the document's text, its variables and its
//! operationName.
//!
//! The generator decides *what* a document selects and *how* each part is
//! written (an alias, a directive, an argument as a literal or as a
//! variable with or without a default, fields grouped into inline or named
//! fragments); writing it out only names things (aliases, variables,
//! fragments), so one tree is always the same request.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

/// A request made of a generated document.
#[derive(Debug, Clone)]
pub struct Document {
    pub query: String,
    pub variables: Value,
    pub operation_name: Option<String>,
}

impl fmt::Display for Document {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}\nwith variables {}", self.query, self.variables)?;
        match &self.operation_name {
            Some(name) => write!(formatter, " and operationName {name:?}"),
            None => write!(formatter, " and no operationName"),
        }
    }
}

/// One entry of a selection set.
#[derive(Debug, Clone)]
pub enum Item {
    Field(Field),
    /// `... on Type { … }`, or `... { … }` without a type condition.
    Inline {
        condition: Option<&'static str>,
        directive: Option<Directive>,
        items: Vec<Item>,
    },
    /// A named fragment on `on` holding `items`, spread once or twice.
    Spread {
        on: &'static str,
        directive: Option<Directive>,
        twice: bool,
        items: Vec<Item>,
    },
    /// Text written as it is (an error document's faulty part).
    Raw(String),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    /// Under an alias of its own (unique in the document).
    pub aliased: bool,
    pub arguments: Vec<Argument>,
    pub directive: Option<Directive>,
    pub selection: Vec<Item>,
    /// Written twice under one response key with the same arguments, the
    /// selection split between the two (overlapping, both with its first
    /// item): field merging.
    pub twin: bool,
}

impl Field {
    pub fn new(name: &'static str, arguments: Vec<Argument>, selection: Vec<Item>) -> Self {
        Field { name, aliased: false, arguments, directive: None, selection, twin: false }
    }
}

/// `@skip(if: …)` or `@include(if: …)`.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: &'static str,
    pub condition: Argument,
}

/// An argument, and how the request gives its value.
#[derive(Debug, Clone)]
pub struct Argument {
    pub name: &'static str,
    /// The type of its position: `Int`, `ID!`, `Boolean!`…
    pub position: &'static str,
    pub value: Value,
    /// Another value of the same argument, for a variable's default.
    pub other: Value,
    pub form: Form,
}

/// How an argument's value is written.
#[derive(Debug, Clone, Copy)]
pub enum Form {
    Literal,
    /// `null` (nullable positions only).
    LiteralNull,
    /// A variable without a default, sent.
    Sent {
        non_null: bool,
    },
    /// A variable whose default is the value, not sent.
    Defaulted {
        non_null: bool,
    },
    /// A variable with another default, sent the value.
    Overridden {
        non_null: bool,
    },
    /// A nullable variable without a default, not sent (nullable positions only).
    Unsent,
    /// A nullable variable without a default, sent null (nullable positions only).
    SentNull,
}

/// A variable an error document adds to its operation, with the value sent
/// for it (none: not sent).
#[derive(Debug, Clone)]
pub struct ExtraVariable {
    pub definition: String,
    pub name: String,
    pub sent: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub roots: Vec<Item>,
    pub extra: Vec<ExtraVariable>,
}

/// How a document names its operations: with one operation, anonymous or
/// named and the name sent or not; with several, each named and the
/// selected one's name sent.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    pub anonymous: bool,
    pub send_name: bool,
}

/// The request for `operations`, asking for the one at `selected`.
pub fn write(operations: &[Operation], selected: usize, naming: Naming) -> Document {
    let mut writer = Writer::default();
    let several = operations.len() > 1;
    let mut texts = Vec::new();
    let mut variables = Map::new();
    for (index, operation) in operations.iter().enumerate() {
        let mut scope = Scope { operation: index, definitions: Vec::new(), values: Map::new() };
        let roots = writer.items(&mut scope, &operation.roots);
        for extra in &operation.extra {
            scope.definitions.push(extra.definition.clone());
            if let Some(value) = &extra.sent {
                scope.values.insert(extra.name.clone(), value.clone());
            }
        }
        let name = if several || !naming.anonymous { format!(" Q{index}") } else { String::new() };
        let definitions =
            if scope.definitions.is_empty() { String::new() } else { format!("({})", scope.definitions.join(", ")) };
        texts.push(if name.is_empty() && definitions.is_empty() {
            format!("{{ {roots} }}")
        } else {
            format!("query{name}{definitions} {{ {roots} }}")
        });
        if index == selected {
            variables = scope.values;
        }
    }
    texts.extend(writer.fragments);
    let operation_name = (several || (!naming.anonymous && naming.send_name)).then(|| format!("Q{selected}"));
    Document { query: texts.join("\n"), variables: Value::Object(variables), operation_name }
}

/// The names given so far in one document.
#[derive(Default)]
struct Writer {
    aliases: usize,
    /// Variables are numbered across operations: async-graphql checks the
    /// arguments of every operation's fragments against the variables sent.
    variables: usize,
    fragments: Vec<String>,
    /// Each operation's fragments by type and body, so a body written
    /// again is spread by the name it already has.
    fragment_names: HashMap<(usize, &'static str, String), String>,
}

/// One operation's variables.
struct Scope {
    operation: usize,
    definitions: Vec<String>,
    values: Map<String, Value>,
}

impl Writer {
    fn items(&mut self, scope: &mut Scope, items: &[Item]) -> String {
        items.iter().map(|item| self.item(scope, item)).collect::<Vec<_>>().join(" ")
    }

    fn item(&mut self, scope: &mut Scope, item: &Item) -> String {
        match item {
            Item::Field(field) => self.field(scope, field),
            Item::Inline { condition, directive, items } => {
                let condition = condition.map(|on| format!(" on {on}")).unwrap_or_default();
                let directive = self.directive(scope, directive);
                format!("...{condition}{directive} {{ {} }}", self.items(scope, items))
            }
            Item::Spread { on, directive, twice, items } => {
                let body = self.items(scope, items);
                let key = (scope.operation, *on, body);
                let name = match self.fragment_names.get(&key) {
                    Some(name) => name.clone(),
                    None => {
                        let name = format!("F{}", self.fragments.len());
                        self.fragments.push(format!("fragment {name} on {on} {{ {} }}", key.2));
                        self.fragment_names.insert(key, name.clone());
                        name
                    }
                };
                let directive = self.directive(scope, directive);
                if *twice {
                    format!("...{name}{directive} ...{name}")
                } else {
                    format!("...{name}{directive}")
                }
            }
            Item::Raw(text) => text.clone(),
        }
    }

    fn field(&mut self, scope: &mut Scope, field: &Field) -> String {
        let key = if field.aliased {
            self.aliases += 1;
            format!("a{}: {}", self.aliases, field.name)
        } else {
            field.name.to_owned()
        };
        let arguments: Vec<String> =
            field.arguments.iter().map(|argument| format!("{}: {}", argument.name, self.value(scope, argument))).collect();
        let arguments = if arguments.is_empty() { String::new() } else { format!("({})", arguments.join(", ")) };
        let directive = self.directive(scope, &field.directive);
        // Each item written once: written again, it would name new aliases
        // and variables, and the twins would no longer merge.
        let items: Vec<String> = field.selection.iter().map(|item| self.item(scope, item)).collect();
        let written = |items: &[String], directive: &str| match items {
            [] => format!("{key}{arguments}{directive}"),
            items => format!("{key}{arguments}{directive} {{ {} }}", items.join(" ")),
        };
        if !field.twin {
            return written(&items, &directive);
        }
        // Two halves that share the middle item, and the first (the
        // selection's anchor, so neither half is empty once skipped):
        // merged, they are the selection.
        let (first, second) = match items.len() {
            0 => (Vec::new(), Vec::new()),
            length => {
                let second = items[..1].iter().chain(&items[(length / 2).max(1)..]).cloned().collect();
                (items[..=length / 2].to_vec(), second)
            }
        };
        format!("{} {}", written(&first, &directive), written(&second, ""))
    }

    fn directive(&mut self, scope: &mut Scope, directive: &Option<Directive>) -> String {
        match directive {
            Some(directive) => format!(" @{}(if: {})", directive.name, self.value(scope, &directive.condition)),
            None => String::new(),
        }
    }

    /// The argument's value as written, declaring (and sending) its variable.
    fn value(&mut self, scope: &mut Scope, argument: &Argument) -> String {
        let base = argument.position.trim_end_matches('!');
        let literal = |value: &Value| serde_json::to_string(value).expect("a JSON value");
        let (non_null, default, sent) = match argument.form {
            Form::Literal => return literal(&argument.value),
            Form::LiteralNull => return "null".to_owned(),
            Form::Sent { non_null } => (non_null, None, Some(&argument.value)),
            Form::Defaulted { non_null } => (non_null, Some(&argument.value), None),
            Form::Overridden { non_null } => (non_null, Some(&argument.other), Some(&argument.value)),
            Form::Unsent => (false, None, None),
            Form::SentNull => (false, None, Some(&Value::Null)),
        };
        let name = format!("v{}", self.variables);
        self.variables += 1;
        let bang = if non_null { "!" } else { "" };
        let default = default.map(|value| format!(" = {}", literal(value))).unwrap_or_default();
        scope.definitions.push(format!("${name}: {base}{bang}{default}"));
        if let Some(value) = sent {
            scope.values.insert(name.clone(), value.clone());
        }
        format!("${name}")
    }
}
