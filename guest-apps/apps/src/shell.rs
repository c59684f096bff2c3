//! The shell language of `sh`: lexing, parsing and word expansion (no execution).
//!
//! Design: a hand-written lexer turns the input into words and operators; a small recursive
//! parser builds a [`List`] of [`Pipeline`]s joined by `;`, newline, `&&` and `||`. Words keep
//! their structure ([`Part`]s: unquoted text, quoted text, variable references) so that
//! expansion can happen at execution time, command by command (`false; echo $?` must see the
//! status of `false`), and so that only unquoted expansions are split into fields.
//!
//! Supported: pipelines `|`, `!`, lists `;` `&&` `||`, redirections `<` `>` `>>` with an
//! optional descriptor number (`2>`, `2>>`, `0<`) and `N>&M`, quoting with `'...'`, `"..."`
//! and `\`, comments `#`, `$NAME`, `${NAME}`, `$?`, `$$`, `$#`, `$0`–`$9`, `$@`, `$*`, a
//! leading `~`, and `NAME=value` prefixes. Not supported: globs, `&`, subshells, control flow.
//! Input that ends inside a quote or after `|`, `&&`, `||` is [`ParseError::Incomplete`], so
//! the caller can read another line and retry.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// A piece of a word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Unquoted literal text.
    Lit(String),
    /// Quoted (or backslash-escaped) literal text: never split, and `""` still makes a word.
    Quoted(String),
    /// A variable reference; `quoted` if inside double quotes (then it is never split).
    Var {
        /// The name: an identifier, or one of `?`, `$`, `#`, `@`, `*`, `0`–`9`.
        name: String,
        /// Inside double quotes.
        quoted: bool,
    },
}

/// A word before expansion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Word {
    /// The pieces, in order.
    pub parts: Vec<Part>,
}

impl Word {
    /// A word of one unquoted literal.
    pub fn lit(text: &str) -> Word {
        Word { parts: alloc::vec![Part::Lit(text.to_string())] }
    }

    /// The word's text if it is a single unquoted literal.
    pub fn as_plain(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Lit(text)] => Some(text),
            _ => None,
        }
    }
}

/// What a redirection does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirOp {
    /// `<`: open the target for reading.
    Read,
    /// `>`: create or truncate the target.
    Write,
    /// `>>`: append to the target.
    Append,
    /// `>&M` / `<&M`: make the descriptor a copy of descriptor `M`.
    Dup(usize),
}

/// One redirection of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The descriptor redirected (default 0 for `<`, 1 for `>`).
    pub fd: usize,
    /// The operation.
    pub op: RedirOp,
    /// The file (unused for [`RedirOp::Dup`]).
    pub target: Word,
}

/// A simple command: assignments, words and redirections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// `NAME=value` prefixes.
    pub assigns: Vec<(String, Word)>,
    /// The command name and its arguments.
    pub words: Vec<Word>,
    /// Redirections, in order.
    pub redirects: Vec<Redirect>,
}

/// Commands connected by `|`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pipeline {
    /// The commands, left to right.
    pub commands: Vec<Command>,
    /// Prefixed by `!`: the status is inverted.
    pub negated: bool,
}

/// How a pipeline is connected to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connector {
    /// Always run (first pipeline, or after `;` / newline).
    Always,
    /// `&&`: run if the previous status was 0.
    And,
    /// `||`: run if the previous status was not 0.
    Or,
}

/// A parsed command line or script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List {
    /// Pipelines with the connector that precedes each.
    pub items: Vec<(Connector, Pipeline)>,
}

/// Why input did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The input ends inside a quote or after an operator that needs more.
    Incomplete,
    /// A syntax error, with a message.
    Syntax(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Incomplete => f.write_str("unexpected end of input"),
            ParseError::Syntax(msg) => f.write_str(msg),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(Word),
    Pipe,
    AndIf,
    OrIf,
    Semi,
    Newline,
    Redir { fd: Option<usize>, op: RedirOp },
}

fn syntax(msg: &str) -> ParseError {
    ParseError::Syntax(msg.to_string())
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// True if `name` is a valid variable name.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

struct Lexer<'a> {
    chars: core::iter::Peekable<core::str::Chars<'a>>,
}

/// Accumulates the parts of the word being lexed.
#[derive(Default)]
struct WordBuilder {
    parts: Vec<Part>,
    started: bool,
}

impl WordBuilder {
    fn push_lit(&mut self, c: char) {
        self.started = true;
        if let Some(Part::Lit(text)) = self.parts.last_mut() {
            text.push(c);
        } else {
            self.parts.push(Part::Lit(c.to_string()));
        }
    }

    fn push_quoted(&mut self, text: &str) {
        self.started = true;
        if let Some(Part::Quoted(existing)) = self.parts.last_mut() {
            existing.push_str(text);
        } else {
            self.parts.push(Part::Quoted(text.to_string()));
        }
    }

    fn push_var(&mut self, name: String, quoted: bool) {
        self.started = true;
        self.parts.push(Part::Var { name, quoted });
    }

    /// The descriptor number if the word so far is an unquoted run of digits.
    fn as_fd(&self) -> Option<usize> {
        match self.parts.as_slice() {
            [Part::Lit(text)] if text.chars().all(|c| c.is_ascii_digit()) => text.parse().ok(),
            _ => None,
        }
    }
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Self {
        Lexer { chars: input.chars().peekable() }
    }

    fn tokens(mut self) -> Result<Vec<Token>, ParseError> {
        let mut out = Vec::new();
        while let Some(token) = self.next_token()? {
            out.push(token);
        }
        Ok(out)
    }

    fn next_token(&mut self) -> Result<Option<Token>, ParseError> {
        // Skip blanks, line continuations and comments.
        loop {
            match self.chars.peek() {
                Some(' ' | '\t' | '\r') => {
                    self.chars.next();
                }
                Some('\\') => {
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    if ahead.peek() == Some(&'\n') {
                        self.chars.next();
                        self.chars.next();
                        if self.chars.peek().is_none() {
                            return Err(ParseError::Incomplete);
                        }
                    } else {
                        break;
                    }
                }
                Some('#') => {
                    while self.chars.peek().is_some_and(|&c| c != '\n') {
                        self.chars.next();
                    }
                }
                _ => break,
            }
        }
        let Some(&c) = self.chars.peek() else {
            return Ok(None);
        };
        let token = match c {
            '\n' => {
                self.chars.next();
                Token::Newline
            }
            ';' => {
                self.chars.next();
                if self.chars.peek() == Some(&';') {
                    return Err(syntax("syntax error near ';;'"));
                }
                Token::Semi
            }
            '|' => {
                self.chars.next();
                if self.chars.peek() == Some(&'|') {
                    self.chars.next();
                    Token::OrIf
                } else {
                    Token::Pipe
                }
            }
            '&' => {
                self.chars.next();
                if self.chars.peek() == Some(&'&') {
                    self.chars.next();
                    Token::AndIf
                } else {
                    return Err(syntax("background jobs ('&') are not supported"));
                }
            }
            '<' | '>' => self.redirect(None)?,
            '(' | ')' => return Err(syntax("subshells ('(' and ')') are not supported")),
            _ => return self.word(),
        };
        Ok(Some(token))
    }

    /// Lexes a redirection operator at `<` or `>`, with an optional descriptor prefix.
    fn redirect(&mut self, fd: Option<usize>) -> Result<Token, ParseError> {
        let first = self.chars.next().unwrap_or('>');
        let mut op = if first == '<' { RedirOp::Read } else { RedirOp::Write };
        if first == '>' && self.chars.peek() == Some(&'>') {
            self.chars.next();
            op = RedirOp::Append;
        } else if self.chars.peek() == Some(&'&') {
            self.chars.next();
            let mut digits = String::new();
            while let Some(&d) = self.chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                self.chars.next();
            }
            let target = digits.parse().map_err(|_| syntax("expected a descriptor number after '>&'"))?;
            op = RedirOp::Dup(target);
        }
        Ok(Token::Redir { fd, op })
    }

    fn word(&mut self) -> Result<Option<Token>, ParseError> {
        let mut word = WordBuilder::default();
        if self.chars.peek() == Some(&'~') {
            let mut ahead = self.chars.clone();
            ahead.next();
            if matches!(ahead.peek(), None | Some('/' | ' ' | '\t' | '\n' | ';' | '|' | '&' | '<' | '>')) {
                self.chars.next();
                word.push_var("HOME".to_string(), true);
            }
        }
        while let Some(&c) = self.chars.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '|' | '&' | '(' | ')' => break,
                '<' | '>' => {
                    if let Some(fd) = word.as_fd() {
                        return self.redirect(Some(fd)).map(Some);
                    }
                    break;
                }
                '\'' => {
                    self.chars.next();
                    let mut text = String::new();
                    loop {
                        match self.chars.next() {
                            Some('\'') => break,
                            Some(ch) => text.push(ch),
                            None => return Err(ParseError::Incomplete),
                        }
                    }
                    word.push_quoted(&text);
                }
                '"' => {
                    self.chars.next();
                    self.double_quoted(&mut word)?;
                }
                '\\' => {
                    self.chars.next();
                    match self.chars.next() {
                        Some('\n') if self.chars.peek().is_none() => {
                            return Err(ParseError::Incomplete);
                        }
                        Some('\n') => {}
                        Some(ch) => {
                            let mut buf = [0u8; 4];
                            word.push_quoted(ch.encode_utf8(&mut buf));
                        }
                        None => return Err(ParseError::Incomplete),
                    }
                }
                '$' => {
                    self.chars.next();
                    match self.dollar()? {
                        Some(name) => word.push_var(name, false),
                        None => word.push_lit('$'),
                    }
                }
                _ => {
                    self.chars.next();
                    word.push_lit(c);
                }
            }
        }
        if !word.started {
            return Err(syntax("syntax error"));
        }
        Ok(Some(Token::Word(Word { parts: word.parts })))
    }

    /// After an opening `"`: reads up to the closing `"`.
    fn double_quoted(&mut self, word: &mut WordBuilder) -> Result<(), ParseError> {
        let mut text = String::new();
        word.started = true;
        loop {
            match self.chars.next() {
                None => return Err(ParseError::Incomplete),
                Some('"') => break,
                Some('\\') => match self.chars.peek() {
                    Some(&ch @ ('$' | '"' | '\\' | '`')) => {
                        self.chars.next();
                        text.push(ch);
                    }
                    Some('\n') => {
                        self.chars.next();
                    }
                    _ => text.push('\\'),
                },
                Some('$') => match self.dollar()? {
                    Some(name) => {
                        if !text.is_empty() {
                            word.push_quoted(&text);
                            text.clear();
                        }
                        word.push_var(name, true);
                    }
                    None => text.push('$'),
                },
                Some(ch) => text.push(ch),
            }
        }
        // Always record the quoted text, even when empty, so `""` makes an (empty) word.
        if !text.is_empty() || !matches!(word.parts.last(), Some(Part::Var { quoted: true, .. })) {
            word.push_quoted(&text);
        }
        Ok(())
    }

    /// After a `$`: the variable name, or `None` if the `$` is literal.
    fn dollar(&mut self) -> Result<Option<String>, ParseError> {
        match self.chars.peek() {
            Some(&c @ ('?' | '$' | '#' | '@' | '*' | '0'..='9')) => {
                self.chars.next();
                Ok(Some(c.to_string()))
            }
            Some('{') => {
                self.chars.next();
                let mut name = String::new();
                loop {
                    match self.chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => return Err(ParseError::Incomplete),
                    }
                }
                let special = matches!(name.as_str(), "?" | "$" | "#" | "@" | "*")
                    || (!name.is_empty() && name.chars().all(|c| c.is_ascii_digit()));
                if is_name(&name) || special {
                    Ok(Some(name))
                } else {
                    Err(ParseError::Syntax(alloc::format!("${{{name}}}: bad substitution")))
                }
            }
            Some(&c) if is_name_start(c) => {
                let mut name = String::new();
                while let Some(&ch) = self.chars.peek().filter(|&&ch| is_name_char(ch)) {
                    name.push(ch);
                    self.chars.next();
                }
                Ok(Some(name))
            }
            _ => Ok(None),
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn skip_newlines(&mut self) {
        while self.peek() == Some(&Token::Newline) {
            self.pos += 1;
        }
    }

    fn list(&mut self) -> Result<List, ParseError> {
        let mut list = List::default();
        let mut connector = Connector::Always;
        loop {
            self.skip_newlines_and_semis(&list)?;
            if self.peek().is_none() {
                if connector != Connector::Always {
                    return Err(ParseError::Incomplete);
                }
                return Ok(list);
            }
            let pipeline = self.pipeline()?;
            list.items.push((connector, pipeline));
            match self.next() {
                None => return Ok(list),
                Some(Token::Semi | Token::Newline) => connector = Connector::Always,
                Some(Token::AndIf) => {
                    connector = Connector::And;
                    self.skip_newlines();
                    if self.peek().is_none() {
                        return Err(ParseError::Incomplete);
                    }
                }
                Some(Token::OrIf) => {
                    connector = Connector::Or;
                    self.skip_newlines();
                    if self.peek().is_none() {
                        return Err(ParseError::Incomplete);
                    }
                }
                Some(other) => return Err(unexpected(&other)),
            }
        }
    }

    /// Skips blank lines; a `;` with nothing before it is an error.
    fn skip_newlines_and_semis(&mut self, list: &List) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(Token::Newline) => self.pos += 1,
                Some(Token::Semi) if list.items.is_empty() => {
                    return Err(syntax("syntax error near unexpected ';'"));
                }
                _ => return Ok(()),
            }
        }
    }

    fn pipeline(&mut self) -> Result<Pipeline, ParseError> {
        let mut pipeline = Pipeline::default();
        if let Some(Token::Word(word)) = self.peek()
            && word.as_plain() == Some("!")
        {
            pipeline.negated = true;
            self.pos += 1;
        }
        loop {
            pipeline.commands.push(self.command()?);
            if self.peek() == Some(&Token::Pipe) {
                self.pos += 1;
                self.skip_newlines();
                if self.peek().is_none() {
                    return Err(ParseError::Incomplete);
                }
            } else {
                return Ok(pipeline);
            }
        }
    }

    fn command(&mut self) -> Result<Command, ParseError> {
        let mut command = Command::default();
        loop {
            match self.peek().cloned() {
                Some(Token::Word(word)) => {
                    self.pos += 1;
                    if command.words.is_empty()
                        && let Some((name, value)) = split_assignment(&word)
                    {
                        command.assigns.push((name, value));
                        continue;
                    }
                    command.words.push(word);
                }
                Some(Token::Redir { fd, op }) => {
                    self.pos += 1;
                    let default_fd = if op == RedirOp::Read { 0 } else { 1 };
                    let fd = fd.unwrap_or(default_fd);
                    let target = if let RedirOp::Dup(_) = op {
                        Word::default()
                    } else {
                        match self.next() {
                            Some(Token::Word(word)) => word,
                            None => return Err(syntax("syntax error: redirection without a file")),
                            Some(other) => return Err(unexpected(&other)),
                        }
                    };
                    command.redirects.push(Redirect { fd, op, target });
                }
                _ => break,
            }
        }
        if command.words.is_empty() && command.assigns.is_empty() && command.redirects.is_empty() {
            return Err(match self.peek() {
                Some(token) => unexpected(token),
                None => ParseError::Incomplete,
            });
        }
        Ok(command)
    }
}

fn unexpected(token: &Token) -> ParseError {
    let what = match token {
        Token::Word(_) => "word",
        Token::Pipe => "'|'",
        Token::AndIf => "'&&'",
        Token::OrIf => "'||'",
        Token::Semi => "';'",
        Token::Newline => "newline",
        Token::Redir { .. } => "redirection",
    };
    ParseError::Syntax(alloc::format!("syntax error near unexpected {what}"))
}

/// Splits `NAME=value` (with `NAME` unquoted) into the name and the value word.
fn split_assignment(word: &Word) -> Option<(String, Word)> {
    let Some(Part::Lit(first)) = word.parts.first() else {
        return None;
    };
    let (name, rest) = first.split_once('=')?;
    if !is_name(name) {
        return None;
    }
    let mut value = Word::default();
    if !rest.is_empty() {
        value.parts.push(Part::Lit(rest.to_string()));
    }
    value.parts.extend(word.parts[1..].iter().cloned());
    Some((name.to_string(), value))
}

/// Parses a command line or a whole script.
pub fn parse(input: &str) -> Result<List, ParseError> {
    let tokens = Lexer::new(input).tokens()?;
    Parser { tokens, pos: 0 }.list()
}

/// Where expansion looks up variables (including the special ones `?`, `$`, `#`, `@`, `*`
/// and the positional `0`–`9`).
pub trait Vars {
    /// The value of `name`, or `None` if unset (expands to nothing).
    fn get(&self, name: &str) -> Option<String>;
}

/// Expands `word` into fields: variables are substituted and unquoted substitutions are
/// split at whitespace. An unquoted expansion to nothing yields no field.
pub fn expand(word: &Word, vars: &dyn Vars) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current: Option<String> = None;
    for part in &word.parts {
        match part {
            Part::Lit(text) | Part::Quoted(text) => {
                current.get_or_insert_with(String::new).push_str(text);
            }
            Part::Var { name, quoted: true } => {
                let value = vars.get(name).unwrap_or_default();
                current.get_or_insert_with(String::new).push_str(&value);
            }
            Part::Var { name, quoted: false } => {
                let value = vars.get(name).unwrap_or_default();
                let starts_blank = value.starts_with(char::is_whitespace);
                let ends_blank = value.ends_with(char::is_whitespace);
                if starts_blank {
                    fields.extend(current.take());
                }
                let mut any = false;
                for (i, piece) in value.split_whitespace().enumerate() {
                    if i > 0 {
                        fields.extend(current.take());
                    }
                    current.get_or_insert_with(String::new).push_str(piece);
                    any = true;
                }
                if any && ends_blank {
                    fields.extend(current.take());
                }
            }
        }
    }
    fields.extend(current);
    fields
}

/// Expands `word` into one string without field splitting (assignments, redirection
/// targets).
pub fn expand_single(word: &Word, vars: &dyn Vars) -> String {
    let mut out = String::new();
    for part in &word.parts {
        match part {
            Part::Lit(text) | Part::Quoted(text) => out.push_str(text),
            Part::Var { name, .. } => out.push_str(&vars.get(name).unwrap_or_default()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);

    impl Vars for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn vars() -> Map {
        Map(HashMap::from([("?", "1"), ("X", "a b"), ("E", ""), ("HOME", "/home/me"), ("SP", " lead trail ")]))
    }

    fn words(line: &str) -> Vec<Vec<String>> {
        let list = parse(line).unwrap();
        list.items
            .iter()
            .flat_map(|(_, p)| p.commands.iter())
            .map(|c| c.words.iter().flat_map(|w| expand(w, &vars())).collect())
            .collect()
    }

    #[test]
    fn simple_words_and_quotes() {
        assert_eq!(words("echo hello  world"), vec![vec!["echo", "hello", "world"]]);
        assert_eq!(words("echo 'a  b' \"c  d\" e\\ f"), vec![vec!["echo", "a  b", "c  d", "e f"]]);
        assert_eq!(words("echo '' \"\""), vec![vec!["echo", "", ""]]);
        assert_eq!(words("echo it\\'s"), vec![vec!["echo", "it's"]]);
    }

    #[test]
    fn variables() {
        assert_eq!(words("echo $? ${?}x"), vec![vec!["echo", "1", "1x"]]);
        assert_eq!(words("echo $X"), vec![vec!["echo", "a", "b"]]);
        assert_eq!(words("echo \"$X\""), vec![vec!["echo", "a b"]]);
        assert_eq!(words("echo $E"), vec![vec!["echo"]]);
        assert_eq!(words("echo \"$E\""), vec![vec!["echo", ""]]);
        assert_eq!(words("echo x${SP}y"), vec![vec!["echo", "x", "lead", "trail", "y"]]);
        assert_eq!(words("echo '$X' \\$X $"), vec![vec!["echo", "$X", "$X", "$"]]);
        assert_eq!(words("echo ~ ~/bin a~"), vec![vec!["echo", "/home/me", "/home/me/bin", "a~"]]);
        assert_eq!(words("echo \"cost: \\$5 $X!\""), vec![vec!["echo", "cost: $5 a b!"]]);
    }

    #[test]
    fn lists_and_pipelines() {
        let list = parse("a | b | c && d || e; f\ng").unwrap();
        let shape: Vec<(Connector, usize)> = list.items.iter().map(|(c, p)| (*c, p.commands.len())).collect();
        assert_eq!(
            shape,
            vec![
                (Connector::Always, 3),
                (Connector::And, 1),
                (Connector::Or, 1),
                (Connector::Always, 1),
                (Connector::Always, 1)
            ]
        );
        assert!(parse("! false").unwrap().items[0].1.negated);
        assert_eq!(parse("").unwrap(), List::default());
        assert_eq!(parse("  # just a comment\n\n").unwrap(), List::default());
        assert_eq!(parse("echo a # comment").unwrap().items[0].1.commands[0].words.len(), 2);
        assert_eq!(parse("echo a;").unwrap().items.len(), 1);
    }

    #[test]
    fn redirections() {
        let list = parse("cat <in >out 2>>err 2>&1 >>app").unwrap();
        let cmd = &list.items[0].1.commands[0];
        assert_eq!(cmd.words, vec![Word::lit("cat")]);
        let ops: Vec<(usize, RedirOp, Option<&str>)> =
            cmd.redirects.iter().map(|r| (r.fd, r.op.clone(), r.target.as_plain())).collect();
        assert_eq!(
            ops,
            vec![
                (0, RedirOp::Read, Some("in")),
                (1, RedirOp::Write, Some("out")),
                (2, RedirOp::Append, Some("err")),
                (2, RedirOp::Dup(1), None),
                (1, RedirOp::Append, Some("app")),
            ]
        );
        let cmd = &parse("echo 2 > f").unwrap().items[0].1.commands[0];
        assert_eq!(cmd.words.len(), 2, "a separated digit is an argument");
        assert_eq!(cmd.redirects[0].fd, 1);
    }

    #[test]
    fn assignments() {
        let cmd = &parse("A=1 B=\"x y\" env C=3").unwrap().items[0].1.commands[0];
        assert_eq!(cmd.assigns.len(), 2);
        assert_eq!(cmd.assigns[0].0, "A");
        assert_eq!(expand_single(&cmd.assigns[1].1, &vars()), "x y");
        assert_eq!(cmd.words.len(), 2, "C=3 after the name is an argument");
        let cmd = &parse("X=").unwrap().items[0].1.commands[0];
        assert_eq!(expand_single(&cmd.assigns[0].1, &vars()), "");
        assert!(cmd.words.is_empty());
    }

    #[test]
    fn incomplete_and_errors() {
        assert_eq!(parse("echo 'abc"), Err(ParseError::Incomplete));
        assert_eq!(parse("echo \"abc"), Err(ParseError::Incomplete));
        assert_eq!(parse("a |"), Err(ParseError::Incomplete));
        assert_eq!(parse("a &&\n"), Err(ParseError::Incomplete));
        assert_eq!(parse("a \\"), Err(ParseError::Incomplete));
        assert_eq!(parse("a \\\n"), Err(ParseError::Incomplete));
        assert_eq!(parse("a b\\\n"), Err(ParseError::Incomplete));
        assert_eq!(words("echo a \\\n b"), vec![vec!["echo", "a", "b"]]);
        assert!(parse("a |\n b").is_ok());
        assert!(matches!(parse("| a"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("a ; ; b"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("a &"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("a >"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("a > | b"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("echo ${a-b}"), Err(ParseError::Syntax(_))));
    }
}
