//! The recursive-descent parser and type checker of a `$filter`.

use super::lex::{Tok, Token, lex};
use super::{CmpOp, Dialect, Expr, FilterError, Kind, Literal, MAX_DEPTH, Property};

/// Parses and type-checks a `$filter` expression (already percent-decoded).
///
/// # Errors
///
/// Returns a [`FilterError`] for an empty filter, a syntax error, an unknown
/// property, a malformed literal, a type mismatch or nesting deeper than
/// [`MAX_DEPTH`].
pub fn parse_filter(input: &str) -> Result<Expr, FilterError> {
    parse_filter_in(input, Dialect::Defender)
}

/// Parses and type-checks a `$filter` expression written in `dialect`'s property names.
///
/// # Errors
///
/// As [`parse_filter`]; a property of the other dialect is unknown.
pub fn parse_filter_in(input: &str, dialect: Dialect) -> Result<Expr, FilterError> {
    let tokens = lex(input)?;
    let mut parser = Parser {
        tokens: tokens.into_iter(),
        end: input.len(),
        depth: 0,
        dialect,
    };
    if parser.peek_is(|k| matches!(k, Tok::End)) {
        return Err(FilterError::new("The $filter expression is empty."));
    }
    let expr = parser.parse_or()?;
    let tok = parser.advance();
    match tok.kind {
        Tok::End => Ok(expr),
        Tok::RParen => Err(FilterError::at(tok.pos, "')' without a matching '('")),
        _ => Err(FilterError::at(
            tok.pos,
            format!(
                "unexpected {}; expected 'and', 'or' or the end of the filter",
                tok.describe()
            ),
        )),
    }
}

/// Operators and functions of OData that this simulator does not implement.
const UNSUPPORTED_OPERATORS: [&str; 7] = ["has", "in", "add", "sub", "mul", "div", "mod"];

struct Parser<'a> {
    tokens: std::vec::IntoIter<Token<'a>>,
    /// Byte length of the filter, the position of [`Tok::End`].
    end: usize,
    depth: usize,
    dialect: Dialect,
}

impl<'a> Parser<'a> {
    fn advance(&mut self) -> Token<'a> {
        self.tokens.next().unwrap_or(Token {
            kind: Tok::End,
            pos: self.end,
            text: "",
        })
    }

    fn peek_is(&self, pred: impl FnOnce(&Tok<'a>) -> bool) -> bool {
        self.tokens
            .as_slice()
            .first()
            .is_some_and(|t| pred(&t.kind))
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        self.peek_is(|k| matches!(k, Tok::Word(w) if w.eq_ignore_ascii_case(keyword)))
    }

    fn descend(&mut self, pos: usize) -> Result<(), FilterError> {
        if self.depth >= MAX_DEPTH {
            return Err(FilterError::at(
                pos,
                format!("the filter nests parentheses and 'not' more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// `and_expr ('or' and_expr)*`
    fn parse_or(&mut self) -> Result<Expr, FilterError> {
        let first = self.parse_and()?;
        if !self.peek_keyword("or") {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.peek_keyword("or") {
            self.advance();
            terms.push(self.parse_and()?);
        }
        Ok(Expr::Or(terms))
    }

    /// `unary ('and' unary)*`
    fn parse_and(&mut self) -> Result<Expr, FilterError> {
        let first = self.parse_unary()?;
        if !self.peek_keyword("and") {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.peek_keyword("and") {
            self.advance();
            terms.push(self.parse_unary()?);
        }
        Ok(Expr::And(terms))
    }

    /// `'not' unary | primary`
    fn parse_unary(&mut self) -> Result<Expr, FilterError> {
        if !self.peek_keyword("not") {
            return self.parse_primary();
        }
        let not = self.advance();
        self.descend(not.pos)?;
        let inner = self.parse_unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    /// `'(' or_expr ')' | comparison`
    fn parse_primary(&mut self) -> Result<Expr, FilterError> {
        let tok = self.advance();
        match tok.kind {
            Tok::LParen => self.parse_group(tok.pos),
            Tok::Word(word) => self.parse_comparison(word, tok.pos),
            _ => Err(expected_operand(&tok)),
        }
    }

    /// `or_expr ')'`, after the `(` at `open`.
    fn parse_group(&mut self, open: usize) -> Result<Expr, FilterError> {
        self.descend(open)?;
        let inner = self.parse_or()?;
        let close = self.advance();
        if close.kind != Tok::RParen {
            return Err(unclosed_group(open, &close));
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// `property op literal`, with `property` already consumed.
    fn parse_comparison(&mut self, name: &'a str, name_pos: usize) -> Result<Expr, FilterError> {
        if ["and", "or"].iter().any(|k| name.eq_ignore_ascii_case(k)) {
            return Err(FilterError::at(
                name_pos,
                format!("missing operand before '{name}'"),
            ));
        }
        if self.peek_is(|k| matches!(k, Tok::LParen)) {
            return Err(FilterError::at(
                name_pos,
                format!("the function '{name}' is not supported"),
            ));
        }
        let Some(property) = Property::from_name(name, self.dialect) else {
            let what = if ["null", "true", "false"]
                .iter()
                .any(|k| name.eq_ignore_ascii_case(k))
            {
                format!("expected a property name on the left of a comparison, found '{name}'")
            } else {
                let ty = match self.dialect {
                    Dialect::Defender => "Alert",
                    Dialect::Graph => "microsoft.graph.security.alert",
                };
                format!("Could not find a property named '{name}' on type '{ty}'")
            };
            return Err(FilterError::at(name_pos, what));
        };

        let op_tok = self.advance();
        if self.dialect == Dialect::Graph
            && matches!(op_tok.kind, Tok::Word(w) if w.eq_ignore_ascii_case("in"))
        {
            return self.parse_in_list(property, name);
        }
        let op = match op_tok.kind {
            Tok::Word(word) => CmpOp::from_keyword(word).ok_or_else(|| {
                let what = if UNSUPPORTED_OPERATORS
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    format!("the operator '{word}' is not supported")
                } else {
                    format!("unknown operator '{word}'")
                };
                FilterError::at(
                    op_tok.pos,
                    format!("{what}; expected one of eq, ne, gt, ge, lt, le after '{name}'"),
                )
            })?,
            _ => {
                return Err(FilterError::at(
                    op_tok.pos,
                    format!(
                        "expected a comparison operator (eq, ne, gt, ge, lt, le) after '{name}', found {}",
                        op_tok.describe()
                    ),
                ));
            }
        };

        let value_tok = self.advance();
        let type_error = |value_tok: &Token<'_>| {
            FilterError::at(
                value_tok.pos,
                format!(
                    "cannot compare the {} property '{property}' with {}",
                    property.kind().describe(),
                    value_tok.describe()
                ),
            )
        };
        let value = match (&value_tok.kind, property.kind()) {
            (Tok::Word(w), _) if w.eq_ignore_ascii_case("null") => {
                if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(FilterError::at(
                        op_tok.pos,
                        format!("the operator '{op}' cannot be used with null; only eq and ne can"),
                    ));
                }
                Literal::Null
            }
            (Tok::Word(w), _)
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") =>
            {
                return Err(type_error(&value_tok));
            }
            (Tok::Word(w), _) if Property::from_name(w, self.dialect).is_some() => {
                return Err(FilterError::at(
                    value_tok.pos,
                    format!(
                        "comparing two properties ('{name}' and '{w}') is not supported; \
                         the right-hand side must be a literal"
                    ),
                ));
            }
            (Tok::Str(s), Kind::String) => Literal::String(s.clone()),
            (Tok::Int(n), Kind::Integer) => Literal::Integer(*n),
            (Tok::DateTime(t), Kind::DateTime) => Literal::DateTime(*t),
            (Tok::Str(_) | Tok::Int(_) | Tok::DateTime(_), _) => {
                return Err(type_error(&value_tok));
            }
            (Tok::Word(_) | Tok::LParen | Tok::RParen | Tok::Comma | Tok::End, _) => {
                return Err(FilterError::at(
                    value_tok.pos,
                    format!(
                        "expected a literal value after '{name} {op}', found {}",
                        value_tok.describe()
                    ),
                ));
            }
        };
        Ok(Expr::Compare {
            property,
            op,
            value,
        })
    }

    /// `'(' literal (',' literal)* ')'` after `property in`: one `eq` per literal, joined by
    /// `or`.
    fn parse_in_list(&mut self, property: Property, name: &str) -> Result<Expr, FilterError> {
        let open = self.advance();
        if open.kind != Tok::LParen {
            return Err(FilterError::at(
                open.pos,
                format!("expected '(' after '{name} in', found {}", open.describe()),
            ));
        }
        let mut terms = Vec::new();
        loop {
            let tok = self.advance();
            let value = match (&tok.kind, property.kind()) {
                (Tok::Str(s), Kind::String) => Literal::String(s.clone()),
                (Tok::Int(n), Kind::Integer) => Literal::Integer(*n),
                (Tok::DateTime(t), Kind::DateTime) => Literal::DateTime(*t),
                (Tok::Word(w), _) if w.eq_ignore_ascii_case("null") => Literal::Null,
                _ => {
                    return Err(FilterError::at(
                        tok.pos,
                        format!(
                            "expected a {} literal in the list of '{name} in', found {}",
                            property.kind().describe(),
                            tok.describe()
                        ),
                    ));
                }
            };
            terms.push(Expr::Compare {
                property,
                op: CmpOp::Eq,
                value,
            });
            let next = self.advance();
            match next.kind {
                Tok::Comma => {}
                Tok::RParen => break,
                _ => return Err(unclosed_group(open.pos, &next)),
            }
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }
}

// Error constructors kept out of the recursive parsing functions so that
// their formatting temporaries do not enlarge every recursion frame.

#[cold]
fn expected_operand(tok: &Token<'_>) -> FilterError {
    let what = if tok.kind == Tok::End {
        "expected a comparison such as status eq 'New', found end of filter".to_owned()
    } else {
        format!("expected a property name or '(', found {}", tok.describe())
    };
    FilterError::at(tok.pos, what)
}

#[cold]
fn unclosed_group(open: usize, found: &Token<'_>) -> FilterError {
    FilterError::at(
        found.pos,
        format!(
            "expected ')' to close the '(' at position {open}, found {}",
            found.describe()
        ),
    )
}
