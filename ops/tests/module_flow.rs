//! No two modules of a crate import each other (STYLE.md, "Flow and
//! dependencies"): a module uses what lies upstream of it, never what lies
//! downstream. For every crate of the workspace this reads each file under
//! `src/`, finds the modules its `crate::`, `super::` and `self::` paths name
//! (in `use` items, in code and in macro bodies), and fails listing every
//! cycle between the modules of one folder: between the top-level modules
//! of the crate, and between the children of each module folder. A module
//! and its own children (`mod.rs` and the files beside it) may use each
//! other; they are one stage.
//!
//! Why a hand-written scan: no well-kept crate computes a crate's module
//! graph as a library (cargo-modules draws it from the command line, on
//! rust-analyzer); syn parses the files, and what is left is a walk and a
//! reachability check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// A module's path in its crate: `["graphql", "composition"]`; the root is empty.
type ModulePath = Vec<String>;

/// One file of a crate's `src/`.
struct Source {
    module: ModulePath,
    /// Its path under `src/`, to name it in a report.
    file: String,
    text: String,
}

/// Folders that hold no crate of the workspace (a crate's `src/` holds its modules).
const NOT_CRATES: [&str; 6] = ["src", "target", "node_modules", ".git", "tests", "benches"];

#[test]
fn no_crate_has_a_cycle_between_its_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("ops/ is in the workspace");
    let mut crates = Vec::new();
    find_crates(root, &mut crates);
    assert!(crates.len() >= 8, "the workspace's crates are found: {crates:?}");
    let mut report = Vec::new();
    for crate_dir in crates {
        let name = crate_dir.strip_prefix(root).unwrap().display().to_string();
        let files = read_sources(&crate_dir.join("src"));
        report.extend(cycles(&files).into_iter().map(|cycle| format!("{name}: {cycle}")));
    }
    assert!(report.is_empty(), "module cycles (each edge with one file that makes it):\n{}", report.join("\n"));
}

#[test]
fn the_scan_follows_use_trees_super_paths_and_macros_but_not_a_files_own_tests() {
    let source = |module: &str, text: &str| Source {
        module: module.split('/').map(str::to_owned).collect(),
        file: format!("{module}.rs"),
        text: text.to_owned(),
    };
    let files = |sources: &[(&str, &str)]| -> Vec<Source> { sources.iter().map(|(module, text)| source(module, text)).collect() };
    // a -> b (a use group), b/c -> a (two supers), d -> e (a macro body), e -> d (a path in code);
    // f and its child g use each other (one stage), as do f's inline tests; in f, h -> g and i -> h.
    let crate_files = files(&[
        ("a", "use crate::{b::{self, X}, d};"),
        ("b", "pub struct X; mod c;"),
        ("b/c", "use super::super::a::Y;"),
        ("d", "fn run() { tokio::select! { _ = crate::e::go() => {} } }"),
        ("e", "fn go() -> crate::d::Thing { todo!() }"),
        ("f", "mod g; pub struct F; #[cfg(test)] mod tests { use super::*; use super::g::G; }"),
        ("f/g", "use super::F; pub struct G;"),
        ("f/h", "use super::g::G;"),
        ("f/i", "use crate::f::h::Z; use self::inner::W; mod inner { pub struct W; }"),
    ]);
    let found = cycles(&crate_files);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0], "a <-> b\n  a -> b: a.rs names crate::b\n  b -> a: b/c.rs names crate::a::Y");
    assert!(found[1].starts_with("d <-> e\n  d -> e: d.rs names crate::e::go"), "{found:#?}");
    // Now g uses i: a cycle inside the folder f.
    let mut with_nested = crate_files;
    with_nested.push(source("f/g", "use super::i::V;"));
    let nested = cycles(&with_nested);
    assert!(nested.iter().any(|cycle| cycle.starts_with("in f: g <-> h <-> i\n")), "{nested:#?}");
}

/// Every folder under `dir` with a `Cargo.toml` and a `src/`.
fn find_crates(dir: &Path, crates: &mut Vec<PathBuf>) {
    if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
        crates.push(dir.to_owned());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && !NOT_CRATES.contains(&name.as_ref()) {
            find_crates(&path, crates);
        }
    }
}

/// The files of a crate's `src/` by module path: `a/b.rs` and `a/b/mod.rs`
/// are `["a", "b"]`. `lib.rs`, `main.rs` and `bin/` are roots of their own
/// (and `main.rs` and `bin/` other crates): they are left out.
fn read_sources(src: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut folders = vec![src.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let relative: Vec<String> = path
                .strip_prefix(src)
                .unwrap()
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if path.is_dir() {
                if relative != ["bin"] {
                    folders.push(path);
                }
                continue;
            }
            let Some(stem) = relative.last().and_then(|name| name.strip_suffix(".rs")) else { continue };
            if relative.len() == 1 && matches!(stem, "lib" | "main") {
                continue;
            }
            let mut module = relative[..relative.len() - 1].to_vec();
            if stem != "mod" {
                module.push(stem.to_owned());
            }
            files.push(Source { module, file: relative.join("/"), text: std::fs::read_to_string(&path).unwrap() });
        }
    }
    files.sort_by(|a, b| a.file.cmp(&b.file));
    files
}

/// The cycles among the modules of each folder of a crate, each with the
/// edges that make it: `"a <-> b\n  a -> b: a.rs names crate::b::X\n  …"`.
fn cycles(files: &[Source]) -> Vec<String> {
    let modules: BTreeSet<&ModulePath> = files.iter().map(|source| &source.module).collect();
    // Per folder (its module path), the edges between its children, with a witness each.
    let mut edges: BTreeMap<ModulePath, BTreeMap<(String, String), String>> = BTreeMap::new();
    for Source { module, file, text } in files {
        let syntax = syn::parse_file(text).unwrap_or_else(|error| panic!("{file}: {error}"));
        let mut references = References { module: module.clone(), named: Vec::new() };
        references.visit_file(&syntax);
        for named in references.named {
            // The module a path names is its longest prefix that is a module.
            let target = (0..=named.len()).rev().map(|length| named[..length].to_vec()).find(|prefix| modules.contains(prefix));
            let target = target.unwrap_or_default();
            let shared = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if shared < module.len() && shared < target.len() {
                let witness = format!("{file} names crate::{}", named.join("::"));
                edges
                    .entry(module[..shared].to_vec())
                    .or_default()
                    .entry((module[shared].clone(), target[shared].clone()))
                    .or_insert(witness);
            }
        }
    }
    let mut found = Vec::new();
    for (folder, edges) in edges {
        for component in strongly_connected(&edges) {
            let within: Vec<String> = edges
                .iter()
                .filter(|((from, to), _)| component.contains(from) && component.contains(to))
                .map(|((from, to), witness)| format!("  {from} -> {to}: {witness}"))
                .collect();
            let place = if folder.is_empty() { String::new() } else { format!("in {}: ", folder.join("/")) };
            let names: Vec<&str> = component.iter().map(String::as_str).collect();
            found.push(format!("{place}{}\n{}", names.join(" <-> "), within.join("\n")));
        }
    }
    found
}

/// The sets of two or more modules that reach one another.
fn strongly_connected(edges: &BTreeMap<(String, String), String>) -> Vec<BTreeSet<String>> {
    let nodes: BTreeSet<&String> = edges.keys().flat_map(|(from, to)| [from, to]).collect();
    let reach = |start: &String| -> BTreeSet<String> {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![start.clone()]);
        while let Some(node) = todo.pop() {
            for ((from, to), _) in edges.iter() {
                if *from == node && seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|node| (*node, reach(node))).collect();
    let mut components: Vec<BTreeSet<String>> = Vec::new();
    for node in &nodes {
        let component: BTreeSet<String> = reached[node].iter().filter(|other| reached[other].contains(*node)).cloned().collect();
        if component.len() > 1 && !components.contains(&component) {
            components.push(component);
        }
    }
    components
}

/// The paths into the crate that one file names, from the crate root.
struct References {
    /// Where the visit is: the file's module, and the inline modules it is in.
    module: ModulePath,
    named: Vec<ModulePath>,
}

impl References {
    /// Records `segments` if they start at `crate`, `super` or `self`; other
    /// paths name other crates, or items in scope (imported by a `use` recorded already).
    fn record(&mut self, segments: &[String]) {
        let (mut base, rest) = match segments.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &segments[1..]),
            Some("self") => (self.module.clone(), &segments[1..]),
            Some("super") => {
                let supers = segments.iter().take_while(|segment| *segment == "super").count();
                (self.module[..self.module.len().saturating_sub(supers)].to_vec(), &segments[supers..])
            }
            _ => return,
        };
        base.extend(rest.iter().filter(|segment| *segment != "self").cloned());
        self.named.push(base);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => self.record(&[prefix.as_slice(), &[name.ident.to_string()]].concat()),
            syn::UseTree::Rename(rename) => self.record(&[prefix.as_slice(), &[rename.ident.to_string()]].concat()),
            syn::UseTree::Glob(_) => self.record(prefix),
            syn::UseTree::Group(group) => group.items.iter().for_each(|item| self.use_tree(prefix, item)),
        }
    }

    /// Macro bodies are tokens: `crate::a::b` (or `super::`, `self::`) in them.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut at = 0;
        while at < tokens.len() {
            match &tokens[at] {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident) if matches!(ident.to_string().as_str(), "crate" | "super" | "self") => {
                    let mut segments = vec![ident.to_string()];
                    while let [TokenTree::Punct(first), TokenTree::Punct(second), TokenTree::Ident(next), ..] = &tokens[at + 1..]
                    {
                        if first.as_char() != ':' || second.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        at += 3;
                    }
                    self.record(&segments);
                }
                _ => {}
            }
            at += 1;
        }
    }
}

impl<'ast> Visit<'ast> for References {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|segment| segment.ident.to_string()).collect();
        self.record(&segments);
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}
