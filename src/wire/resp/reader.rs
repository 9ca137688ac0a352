//! Walking one reply's bytes without building it: the other half of
//! [`Decoder::next_raw`](super::Decoder::next_raw).

use super::{parse_integer, parse_length, Reply, PREALLOC_ITEMS};

/// One RESP2 value's header, or a whole value that has no elements. The
/// bytes are borrowed from the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// `+OK\r\n`.
    Simple(&'a [u8]),
    /// `-ERR …\r\n`.
    Error(&'a [u8]),
    /// `:1000\r\n`.
    Integer(i64),
    /// `$5\r\nhello\r\n`.
    Bulk(&'a [u8]),
    /// `$-1\r\n`.
    NullBulk,
    /// `*2\r\n`: this many values follow, the array's elements.
    Array(usize),
    /// `*-1\r\n`.
    NullArray,
}

/// Reads RESP2 values from bytes, token by token: an array is its
/// [`Token::Array`] header followed by its elements' tokens. Meant for the
/// bytes [`Decoder::next_raw`](super::Decoder::next_raw) checked; on any
/// other bytes it never panics: what is not RESP2 ends the reading (`None`).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next token; `None` at the end or at bytes that are not RESP2.
    pub fn next_token(&mut self) -> Option<Token<'a>> {
        let rest = &self.bytes[self.pos..];
        let (&kind, _) = rest.split_first()?;
        // The line is the type byte, then up to its CRLF.
        let line_end = rest.iter().skip(1).position(|&b| b == b'\r')? + 1;
        if rest.get(line_end + 1) != Some(&b'\n') {
            return None;
        }
        let line = &rest[1..line_end];
        let after = self.pos + line_end + 2;
        let token = match kind {
            b'+' => Token::Simple(line),
            b'-' => Token::Error(line),
            b':' => Token::Integer(parse_integer(line)?),
            b'$' => match parse_length(line).ok()? {
                None => Token::NullBulk,
                Some(len) => {
                    let len = usize::try_from(len).ok()?;
                    let data = self.bytes.get(after..after.checked_add(len)?)?;
                    if self.bytes.get(after + len..after + len + 2)? != b"\r\n" {
                        return None;
                    }
                    self.pos = after + len + 2;
                    return Some(Token::Bulk(data));
                }
            },
            b'*' => match parse_length(line).ok()? {
                None => Token::NullArray,
                Some(len) => Token::Array(usize::try_from(len).ok()?),
            },
            _ => return None,
        };
        self.pos = after;
        Some(token)
    }

    /// The next token if it is a bulk string: its bytes.
    pub fn bulk(&mut self) -> Option<&'a [u8]> {
        match self.next_token()? {
            Token::Bulk(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The next token if it is an array header: its length.
    pub fn array(&mut self) -> Option<usize> {
        match self.next_token()? {
            Token::Array(len) => Some(len),
            _ => None,
        }
    }

    /// The next whole value, built: the [`Reply`] that
    /// [`Decoder::next_reply`](super::Decoder::next_reply) gives for the
    /// same bytes. `None` at bytes that are not RESP2.
    pub fn reply(&mut self) -> Option<Reply> {
        // Arrays being filled, outermost first, and their elements to come.
        let mut open: Vec<(Vec<Reply>, usize)> = Vec::new();
        loop {
            let mut value = match self.next_token()? {
                Token::Simple(s) => Reply::Simple(s.to_vec()),
                Token::Error(s) => Reply::Error(s.to_vec()),
                Token::Integer(n) => Reply::Integer(n),
                Token::Bulk(b) => Reply::Bulk(b.to_vec()),
                Token::NullBulk => Reply::NullBulk,
                Token::NullArray => Reply::NullArray,
                Token::Array(0) => Reply::Array(Vec::new()),
                Token::Array(len) => {
                    open.push((Vec::with_capacity(len.min(PREALLOC_ITEMS)), len));
                    continue;
                }
            };
            loop {
                let Some((items, left)) = open.last_mut() else {
                    return Some(value);
                };
                items.push(value);
                *left -= 1;
                if *left > 0 {
                    break;
                }
                let (items, _) = open.pop().expect("checked above");
                value = Reply::Array(items);
            }
        }
    }

    /// Passes one whole value, its elements and theirs.
    pub fn skip_value(&mut self) -> Option<()> {
        let mut values: usize = 1;
        while values > 0 {
            values -= 1;
            if let Token::Array(len) = self.next_token()? {
                values = values.checked_add(len)?;
            }
        }
        Some(())
    }
}
