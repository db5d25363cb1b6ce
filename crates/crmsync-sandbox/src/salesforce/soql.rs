//! A SOQL parser for the subset the sandbox answers (FACTS 3.6): field lists with one level of
//! parent relationship, `COUNT()`, WHERE with AND/OR/NOT and parentheses, comparison, LIKE and
//! IN operators, string/number/boolean/null/date/datetime literals, ORDER BY with ASC/DESC and
//! NULLS FIRST/LAST, LIMIT and OFFSET. Invariant: anything outside that subset is a
//! `MALFORMED_QUERY`, never a silently different query.

use chrono::{DateTime, NaiveDate, Utc};

use super::clock;

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

/// A WHERE condition. Field paths are as written (`Name`, `Account.Name`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Cmp(String, Op, Literal),
    In(String, Vec<Literal>, bool),
}

/// One ORDER BY item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Order {
    pub field: String,
    pub descending: bool,
    pub nulls_last: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// `None` for `SELECT COUNT()`.
    pub fields: Option<Vec<String>>,
    pub object: String,
    pub filter: Option<Cond>,
    pub order: Vec<Order>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
    Sym(&'static str),
}

fn describe(tok: Option<&Tok>) -> String {
    match tok {
        None => "end of query".to_owned(),
        Some(Tok::Word(w)) => format!("'{w}'"),
        Some(Tok::Str(s)) => format!("'{s}'"),
        Some(Tok::Num(n)) => format!("'{n}'"),
        Some(Tok::DateTime(d)) => format!("'{d}'"),
        Some(Tok::Date(d)) => format!("'{d}'"),
        Some(Tok::Sym(s)) => format!("'{s}'"),
    }
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".to_owned()),
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let escaped = chars.get(i + 1).copied().ok_or("dangling escape")?;
                        match escaped {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            // Kept escaped: LIKE treats them as literal wildcards.
                            '%' | '_' => {
                                s.push('\\');
                                s.push(escaped);
                            }
                            other => s.push(other),
                        }
                        i += 2;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|ch| ch.is_ascii_alphanumeric() || matches!(ch, ':' | '.' | '+' | '-'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if let Some(at) = word.contains('T').then(|| clock::parse(&word)).flatten() {
                out.push(Tok::DateTime(at));
            } else if let Some(date) = (word.len() == 10)
                .then(|| clock::parse_date(&word))
                .flatten()
            {
                out.push(Tok::Date(date));
            } else {
                out.push(Tok::Num(
                    word.parse()
                        .map_err(|_| format!("unexpected token: '{word}'"))?,
                ));
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '.'))
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let sym = match two.as_str() {
                "!=" => "!=",
                "<>" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                _ => match c {
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    _ => return Err(format!("unexpected character '{c}'")),
                },
            };
            i += if matches!(two.as_str(), "!=" | "<>" | "<=" | ">=") {
                2
            } else {
                1
            };
            out.push(Tok::Sym(sym));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn unexpected(&self) -> String {
        format!("unexpected token: {}", describe(self.peek()))
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn keyword(&mut self, word: &str) -> bool {
        if self.is_keyword(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), String> {
        if self.keyword(word) {
            Ok(())
        } else {
            Err(format!("expecting {word}, {}", self.unexpected()))
        }
    }

    fn symbol(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        const RESERVED: &[&str] = &[
            "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "LIMIT", "OFFSET", "IN",
            "LIKE",
        ];
        match self.peek() {
            Some(Tok::Word(w)) if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self) -> Result<Literal, String> {
        let lit = match self.peek() {
            Some(Tok::Str(s)) => Literal::Str(s.clone()),
            Some(Tok::Num(n)) => Literal::Num(*n),
            Some(Tok::DateTime(d)) => Literal::DateTime(*d),
            Some(Tok::Date(d)) => Literal::Date(*d),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(lit)
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, String> {
        if self.keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        if self.symbol("(") {
            let inner = self.or()?;
            if !self.symbol(")") {
                return Err(format!("expecting ')', {}", self.unexpected()));
            }
            return Ok(inner);
        }
        let field = self.ident()?;
        let negated_in = self.is_keyword("NOT");
        if negated_in {
            self.pos += 1;
            if !self.is_keyword("IN") {
                return Err(self.unexpected());
            }
        }
        if self.keyword("IN") {
            if !self.symbol("(") {
                return Err(format!("expecting '(', {}", self.unexpected()));
            }
            let mut values = vec![self.literal()?];
            while self.symbol(",") {
                values.push(self.literal()?);
            }
            if !self.symbol(")") {
                return Err(format!("expecting ')', {}", self.unexpected()));
            }
            return Ok(Cond::In(field, values, negated_in));
        }
        let op = if self.keyword("LIKE") {
            Op::Like
        } else {
            match self.next() {
                Some(Tok::Sym("=")) => Op::Eq,
                Some(Tok::Sym("!=")) => Op::Ne,
                Some(Tok::Sym("<")) => Op::Lt,
                Some(Tok::Sym("<=")) => Op::Le,
                Some(Tok::Sym(">")) => Op::Gt,
                Some(Tok::Sym(">=")) => Op::Ge,
                other => return Err(format!("unexpected token: {}", describe(other.as_ref()))),
            }
        };
        Ok(Cond::Cmp(field, op, self.literal()?))
    }

    fn count(&mut self) -> Result<usize, String> {
        match self.next() {
            Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            other => Err(format!(
                "expecting a non-negative integer, got {}",
                describe(other.as_ref())
            )),
        }
    }
}

/// Parses `text`; the error is the `MALFORMED_QUERY` message.
pub(crate) fn parse(text: &str) -> Result<Query, String> {
    let mut p = Parser {
        toks: lex(text)?,
        pos: 0,
    };
    p.expect_keyword("SELECT")?;
    let fields = if p.is_keyword("COUNT") && p.toks.get(p.pos + 1) == Some(&Tok::Sym("(")) {
        p.pos += 2;
        if !p.symbol(")") {
            return Err("only COUNT() without a field is supported".to_owned());
        }
        None
    } else {
        let mut fields = vec![p.ident()?];
        while p.symbol(",") {
            fields.push(p.ident()?);
        }
        Some(fields)
    };
    p.expect_keyword("FROM")?;
    let object = p.ident()?;
    let filter = if p.keyword("WHERE") {
        Some(p.or()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let field = p.ident()?;
            let descending = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            let nulls_last = if p.keyword("NULLS") {
                if p.keyword("LAST") {
                    true
                } else {
                    p.expect_keyword("FIRST")?;
                    false
                }
            } else {
                descending
            };
            order.push(Order {
                field,
                descending,
                nulls_last,
            });
            if !p.symbol(",") {
                break;
            }
        }
    }
    let limit = if p.keyword("LIMIT") {
        Some(p.count()?)
    } else {
        None
    };
    let offset = if p.keyword("OFFSET") {
        Some(p.count()?)
    } else {
        None
    };
    if p.peek().is_some() {
        return Err(p.unexpected());
    }
    Ok(Query {
        fields,
        object,
        filter,
        order,
        limit,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_incremental_query() {
        let q = parse("SELECT Id, Account.Name FROM Contact WHERE SystemModstamp > 2024-01-01T00:00:00Z AND (Name LIKE 'a%' OR NOT Email = null) ORDER BY SystemModstamp, Id DESC NULLS FIRST LIMIT 10 OFFSET 5")
            .expect("parses");
        assert_eq!(
            q.fields,
            Some(vec!["Id".to_owned(), "Account.Name".to_owned()])
        );
        assert_eq!(q.object, "Contact");
        assert_eq!(q.order.len(), 2);
        assert!(q.order[1].descending && !q.order[1].nulls_last);
        assert_eq!((q.limit, q.offset), (Some(10), Some(5)));
        assert!(matches!(q.filter, Some(Cond::And(..))));
    }

    #[test]
    fn count_and_in() {
        let q = parse("select count() from Account where Id not in ('a', 'b')").expect("parses");
        assert_eq!(q.fields, None);
        assert!(matches!(q.filter, Some(Cond::In(_, ref v, true)) if v.len() == 2));
    }

    #[test]
    fn malformed_queries_are_refused() {
        for bad in [
            "SELECT Id FROM Account WHERE",
            "SELECT FROM Account",
            "SELECT Id Account",
            "SELECT Id FROM Account LIMIT x",
            "SELECT Id FROM Account WHERE Name = 'x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
