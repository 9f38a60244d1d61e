//! aptly's package query language, for apt and rpm packages.
//!
//! ```text
//! query := or          or  := and ('|' and)*      and := not (',' not)*
//! not   := '!' not | '(' query ')' | condition
//! condition := WORD [ '(' [OP] VALUE ')' ] [ '{' ARCH '}' ]
//! OP    := '=' | '>=' | '<=' | '>>' | '<<' | '>' | '<' | '%' (glob) | '~' (regex)
//! ```
//!
//! A WORD starting with `$` or an upper-case letter names a field (`Name`,
//! `Priority`, `$Architecture`, `$Source`, `$Version`, `$PackageType`, any
//! stanza field for apt); any other WORD is a package name, and its
//! parenthesised relation constrains the version: `nginx (>= 1.2)`. Version
//! relations (`>=`, `<<`, …) compare with Debian ordering for apt and
//! rpmvercmp (epoch:version-release) for rpm; `>`/`<` mean `>=`/`<=` as in
//! Debian's deprecated syntax. `{amd64}` restricts the architecture.
//!
//! Parsing and matching only: it sees packages through [`PackageFields`] and
//! never reads the pool.

use std::cmp::Ordering;
use std::fmt;

/// How package versions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Deb,
    Rpm,
}

impl Flavor {
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        if a == b {
            return Ordering::Equal;
        }
        match self {
            Self::Deb => crate::formats::debversion::compare(a, b),
            Self::Rpm => {
                crate::formats::rpm::Evr::parse(a).cmp(&crate::formats::rpm::Evr::parse(b))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    pub query: String,
    /// 0-based character position of the problem.
    pub position: usize,
    pub message: String,
}

impl QueryError {
    /// A query the user wrote: a usage error.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid query at position {}: {}\n  {}\n  {}^",
            self.position + 1,
            self.message,
            self.query,
            " ".repeat(self.position)
        )
    }
}

/// A relation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ge,
    Le,
    Gt,
    Lt,
    Glob,
    Regex,
}

impl Op {
    /// Parses a Debian/aptly relation (`>=`, `<<`, `=`, …).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" | "==" => Self::Eq,
            ">=" | ">" => Self::Ge,
            "<=" | "<" => Self::Le,
            ">>" => Self::Gt,
            "<<" => Self::Lt,
            "%" => Self::Glob,
            "~" => Self::Regex,
            _ => return None,
        })
    }

    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            Self::Eq => ord == Ordering::Equal,
            Self::Ge => ord != Ordering::Less,
            Self::Le => ord != Ordering::Greater,
            Self::Gt => ord == Ordering::Greater,
            Self::Lt => ord == Ordering::Less,
            Self::Glob | Self::Regex => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Exists,
    Equals(String),
    Relation(Op, String),
    Glob(String),
    Regex(regex::Regex),
}

#[derive(Debug, Clone)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// A field condition.
    Field {
        field: String,
        matcher: Matcher,
        arch: Option<String>,
    },
    /// A package name, optionally with a version relation.
    Package {
        name: String,
        matcher: Matcher,
        arch: Option<String>,
    },
}

/// What a query can ask of a package.
pub trait PackageFields {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    fn arch(&self) -> &str;
    fn source(&self) -> &str;
    /// `deb`, `udeb`, `source` or `rpm`.
    fn package_type(&self) -> &str;
    /// Any other field (apt stanza fields; a few rpm primary fields).
    fn field(&self, name: &str) -> Option<String>;
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    root: Node,
    pub text: String,
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    text: &'a str,
    depth: usize,
}

const SPECIAL: &[char] = &['(', ')', ',', '|', '!', '{', '}'];

/// The compiled size a `~` regex may reach.
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// How deep `(` and `!` may nest: the parser recurses once a level, and a
/// query is outside input (a line of 100k `!` would overflow the stack).
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn err(&self, position: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            query: self.text.to_owned(),
            position,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).copied()
    }

    fn or(&mut self) -> Result<Node, QueryError> {
        let mut left = self.and()?;
        while self.peek() == Some('|') {
            self.pos += 1;
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let mut left = self.not()?;
        while self.peek() == Some(',') {
            self.pos += 1;
            let right = self.not()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, QueryError> {
        self.depth += 1;
        let node = self.not_inner();
        self.depth -= 1;
        node
    }

    fn not_inner(&mut self) -> Result<Node, QueryError> {
        if self.depth > MAX_DEPTH {
            return Err(self.err(self.pos, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        match self.peek() {
            Some('!') => {
                self.pos += 1;
                Ok(Node::Not(Box::new(self.not()?)))
            }
            Some('(') => {
                let open = self.pos;
                self.pos += 1;
                let inner = self.or()?;
                if self.peek() != Some(')') {
                    return Err(self.err(open, "unclosed `(`"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(c) if SPECIAL.contains(&c) => Err(self.err(self.pos, format!("unexpected `{c}`"))),
            Some(_) => self.condition(),
            None => Err(self.err(self.pos, "expected a condition")),
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| !c.is_whitespace() && !SPECIAL.contains(c))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn condition(&mut self) -> Result<Node, QueryError> {
        let start = self.pos;
        let word = self.word();
        let is_field = word.starts_with('$') || word.starts_with(|c: char| c.is_ascii_uppercase());
        let mut matcher = if is_field {
            Matcher::Exists
        } else {
            Matcher::Equals(String::new())
        };
        if self.peek() == Some('(') {
            let open = self.pos;
            self.pos += 1;
            self.skip_ws();
            let op_start = self.pos;
            let mut op_text = String::new();
            while self
                .chars
                .get(self.pos)
                .is_some_and(|c| matches!(c, '<' | '>' | '=' | '%' | '~'))
            {
                op_text.push(self.chars[self.pos]);
                self.pos += 1;
            }
            let op =
                if op_text.is_empty() {
                    None
                } else {
                    Some(Op::parse(&op_text).ok_or_else(|| {
                        self.err(op_start, format!("unknown operator `{op_text}`"))
                    })?)
                };
            self.skip_ws();
            let value_start = self.pos;
            while self.chars.get(self.pos).is_some_and(|c| *c != ')') {
                self.pos += 1;
            }
            if self.chars.get(self.pos) != Some(&')') {
                return Err(self.err(open, "unclosed `(`"));
            }
            let value: String = self.chars[value_start..self.pos]
                .iter()
                .collect::<String>()
                .trim()
                .to_owned();
            self.pos += 1;
            if value.is_empty() {
                return Err(self.err(value_start, "expected a value"));
            }
            matcher = match op {
                None => Matcher::Equals(value),
                Some(Op::Glob) => Matcher::Glob(value),
                Some(Op::Regex) => Matcher::Regex(
                    // A query is outside input: hundreds of Unicode classes
                    // took 190 ms to compile (found by fuzzing); a package
                    // pattern needs a fraction of this limit.
                    regex::RegexBuilder::new(&format!("^(?:{value})$"))
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| self.err(value_start, format!("invalid regex: {e}")))?,
                ),
                Some(op) => Matcher::Relation(op, value),
            };
        }
        let mut arch = None;
        if self.peek() == Some('{') {
            let open = self.pos;
            self.pos += 1;
            self.skip_ws();
            let a = self.word();
            if self.peek() != Some('}') || a.is_empty() {
                return Err(self.err(open, "expected `{ARCH}`"));
            }
            self.pos += 1;
            arch = Some(a);
        }
        if word.is_empty() {
            return Err(self.err(start, "expected a package name or field"));
        }
        Ok(if is_field {
            Node::Field {
                field: word,
                matcher,
                arch,
            }
        } else {
            Node::Package {
                name: word,
                matcher,
                arch,
            }
        })
    }
}

impl Query {
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
            text,
            depth: 0,
        };
        let root = p.or()?;
        if let Some(c) = p.peek() {
            return Err(p.err(p.pos, format!("unexpected `{c}`")));
        }
        Ok(Self {
            root,
            text: text.to_owned(),
        })
    }

    pub fn matches(&self, pkg: &dyn PackageFields, flavor: Flavor) -> bool {
        eval(&self.root, pkg, flavor)
    }
}

fn field_value(pkg: &dyn PackageFields, field: &str) -> Option<String> {
    let bare = field.trim_start_matches('$');
    match bare {
        "Name" | "Package" => Some(pkg.name().to_owned()),
        "Version" => Some(pkg.version().to_owned()),
        "Architecture" => Some(pkg.arch().to_owned()),
        "Source" if field.starts_with('$') => Some(pkg.source().to_owned()),
        "PackageType" => Some(pkg.package_type().to_owned()),
        _ => pkg.field(bare),
    }
}

fn test(matcher: &Matcher, value: Option<&str>, flavor: Flavor, is_version: bool) -> bool {
    let Some(value) = value else {
        return false;
    };
    match matcher {
        Matcher::Exists => true,
        Matcher::Equals(want) if want.is_empty() => true,
        Matcher::Equals(want) if is_version => flavor.compare(value, want) == Ordering::Equal,
        Matcher::Equals(want) => value == want,
        Matcher::Relation(op, want) => {
            if is_version {
                op.holds(flavor.compare(value, want))
            } else {
                op.holds(Flavor::Deb.compare(value, want))
            }
        }
        Matcher::Glob(pattern) => glob(pattern.as_bytes(), value.as_bytes()),
        Matcher::Regex(re) => re.is_match(value),
    }
}

fn eval(node: &Node, pkg: &dyn PackageFields, flavor: Flavor) -> bool {
    match node {
        Node::And(a, b) => eval(a, pkg, flavor) && eval(b, pkg, flavor),
        Node::Or(a, b) => eval(a, pkg, flavor) || eval(b, pkg, flavor),
        Node::Not(a) => !eval(a, pkg, flavor),
        Node::Field {
            field,
            matcher,
            arch,
        } => {
            arch.as_ref().is_none_or(|a| a == pkg.arch())
                && test(
                    matcher,
                    field_value(pkg, field).as_deref(),
                    flavor,
                    field.trim_start_matches('$') == "Version",
                )
        }
        Node::Package {
            name,
            matcher,
            arch,
        } => {
            pkg.name() == name
                && arch.as_ref().is_none_or(|a| a == pkg.arch())
                && test(matcher, Some(pkg.version()), flavor, true)
        }
    }
}

/// Shell-style glob with `*` and `?` (no classes): enough for package
/// names, and simpler than pulling in a glob crate for one operator.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct P {
        name: &'static str,
        version: &'static str,
        arch: &'static str,
        priority: &'static str,
    }

    impl PackageFields for P {
        fn name(&self) -> &str {
            self.name
        }
        fn version(&self) -> &str {
            self.version
        }
        fn arch(&self) -> &str {
            self.arch
        }
        fn source(&self) -> &str {
            "src"
        }
        fn package_type(&self) -> &str {
            "deb"
        }
        fn field(&self, name: &str) -> Option<String> {
            (name == "Priority").then(|| self.priority.to_owned())
        }
    }

    fn m(q: &str, p: &P) -> bool {
        Query::parse(q).unwrap().matches(p, Flavor::Deb)
    }

    #[test]
    fn evaluates_aptly_queries() {
        let nginx = P {
            name: "nginx",
            version: "1.2.3-1",
            arch: "amd64",
            priority: "optional",
        };
        assert!(m("nginx", &nginx));
        assert!(m("nginx (>= 1.2)", &nginx));
        assert!(!m("nginx (<< 1.2)", &nginx));
        assert!(m("Name (% ngi*)", &nginx));
        assert!(m("Name (~ ng.*x)", &nginx));
        assert!(m("$Architecture (amd64)", &nginx));
        assert!(m("$Version (<< 2.0), !Priority (required)", &nginx));
        assert!(m("Priority (required) | nginx {amd64}", &nginx));
        assert!(!m("nginx {arm64}", &nginx));
        assert!(m("!(bash | Priority (required))", &nginx));
        assert!(m("$Source (src)", &nginx));
        assert!(!m("bash", &nginx));
    }

    /// Inputs the `query` fuzz target found (tests/fixtures/fuzz/query/).
    #[test]
    fn fuzz_findings_are_refused_not_compiled_or_recursed_into() {
        // Hundreds of Unicode classes and word boundaries in one `~`
        // regex compiled for 190 ms (libFuzzer's 1 s limit under load):
        // now refused at the size limit.
        let text =
            std::str::from_utf8(include_bytes!("../../tests/fixtures/fuzz/query/slow-regex"))
                .unwrap();
        let e = Query::parse(text).unwrap_err();
        assert!(e.message.contains("size limit"), "{e}");
        // 100k `!` or `(` nest past the limit instead of overflowing the
        // stack; 60 levels still parse.
        for deep in [
            format!("{}a", "!".repeat(100_000)),
            format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000)),
        ] {
            let e = Query::parse(&deep).unwrap_err();
            assert!(e.message.contains("nested deeper"), "{}", e.message);
        }
        Query::parse(&format!("{}a{}", "(".repeat(60), ")".repeat(60))).unwrap();
        for ordinary in [
            "Name (~ ng[a-z]+x?), !Priority (~ extra|optional)",
            r"Name (~ lib\w+-dev), Version (~ \d+\.\d+.*)",
            r"Name (~ python3-\S+|py-[[:alpha:]]+)",
        ] {
            Query::parse(ordinary).unwrap();
        }
    }

    #[test]
    fn malformed_queries_point_at_the_problem() {
        for (q, pos) in [
            ("nginx (>= 1.2", 6),
            ("a, ", 3),
            ("a | )", 4),
            ("(a", 0),
            ("Name (=> 1)", 6),
        ] {
            let e = Query::parse(q).unwrap_err();
            assert_eq!(e.position, pos, "{q}: {e}");
            assert!(e.to_string().contains('^'));
        }
    }

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob(b"lib*", b"libc6"));
        assert!(glob(b"*-dev", b"libfoo-dev"));
        assert!(glob(b"l?bc6", b"libc6"));
        assert!(!glob(b"lib*", b"glibc"));
    }

    #[test]
    fn version_orderings() {
        use Ordering::*;
        assert_eq!(Flavor::Deb.compare("1.0~rc1", "1.0"), Less);
        assert_eq!(Flavor::Deb.compare("1.0+b1", "1.0"), Greater);
        assert_eq!(Flavor::Deb.compare("1:0.9", "1.0+b1"), Greater);
        assert_eq!(Flavor::Rpm.compare("1.0-1.el9", "1.0-1"), Greater);
        assert_eq!(Flavor::Rpm.compare("1:0.9-1", "2.0-1"), Greater);
    }
}
