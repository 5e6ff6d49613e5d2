//! Reading a new admin password for `ntop -A` and for the first start on a terminal.
//!
//! Runs on the main thread at startup, before the runtime exists. On a terminal the password
//! is asked twice without echo (rpassword reads `/dev/tty`); otherwise exactly one line is read
//! from standard input, so that scripts can pipe it in. [`read_new_password_with`] takes the
//! terminal decision, the input and the prompt function as arguments, for tests.

use std::io::{self, BufRead, IsTerminal as _, Read as _, Write};

use super::{AuthError, password};

/// How many times the terminal prompt asks before giving up.
pub const ATTEMPTS: usize = 3;
/// The longest password line read from standard input, in bytes.
pub const MAX_LINE: usize = 4096;

/// Reads a new admin password: from the terminal (asked twice, no echo) when standard input
/// is one, else one line of standard input. The password satisfies
/// [`password::check_new`].
///
/// # Errors
/// See [`read_new_password_with`].
pub fn read_new_password() -> Result<String, AuthError> {
    let stdin = io::stdin();
    let tty = stdin.is_terminal();
    read_new_password_with(
        tty,
        &mut stdin.lock(),
        &mut |prompt| rpassword::prompt_password(prompt),
        &mut io::stderr(),
    )
}

/// [`read_new_password`] with its inputs injected: `tty` chooses the interactive path, which
/// calls `ask` with a prompt and writes problems to `out`; otherwise one line is read from
/// `input` (its line ending removed).
///
/// # Errors
/// Interactive: after [`ATTEMPTS`] tries, the last problem ([`AuthError::PasswordMismatch`],
/// [`AuthError::PasswordEmpty`] or [`AuthError::PasswordTooShort`]); [`AuthError::Prompt`]
/// when the terminal cannot be read. Standard input: [`AuthError::NoPasswordInput`] at end of
/// input, [`AuthError::PasswordEmpty`] / [`AuthError::PasswordTooShort`], or
/// [`AuthError::Prompt`] for a read error, invalid UTF-8 or a line over [`MAX_LINE`] bytes.
pub fn read_new_password_with(
    tty: bool,
    input: &mut dyn BufRead,
    ask: &mut dyn FnMut(&str) -> io::Result<String>,
    out: &mut dyn Write,
) -> Result<String, AuthError> {
    if tty {
        interactive(ask, out)
    } else {
        one_line(input)
    }
}

fn interactive(
    ask: &mut dyn FnMut(&str) -> io::Result<String>,
    out: &mut dyn Write,
) -> Result<String, AuthError> {
    let mut last = AuthError::PasswordMismatch;
    for attempt in 1..=ATTEMPTS {
        let first = ask("New admin password: ").map_err(AuthError::Prompt)?;
        if let Err(e) = password::check_new(&first) {
            last = e;
        } else {
            let second = ask("Repeat the admin password: ").map_err(AuthError::Prompt)?;
            if first == second {
                return Ok(first);
            }
            last = AuthError::PasswordMismatch;
        }
        if attempt < ATTEMPTS {
            // The terminal is the user's; a failed write there is not worth failing for.
            let _ = writeln!(out, "{last}; try again");
        }
    }
    Err(last)
}

fn one_line(input: &mut dyn BufRead) -> Result<String, AuthError> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
    let read = input
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(AuthError::Prompt)?;
    if read == 0 {
        return Err(AuthError::NoPasswordInput);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > MAX_LINE {
        return Err(AuthError::Prompt(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the password line is longer than {MAX_LINE} bytes"),
        )));
    }
    let password = String::from_utf8(line).map_err(|_| {
        AuthError::Prompt(io::Error::new(
            io::ErrorKind::InvalidData,
            "the password is not valid UTF-8",
        ))
    })?;
    password::check_new(&password)?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read as _};

    use super::*;

    /// Runs the interactive path with `answers` as what the user types, returning the result,
    /// the prompts shown and what was written to the terminal.
    fn tty(answers: &[&str]) -> (Result<String, AuthError>, Vec<String>, String) {
        let mut answers = answers.iter();
        let mut prompts = Vec::new();
        let mut out = Vec::new();
        let result = read_new_password_with(
            true,
            &mut Cursor::new(b"stdin is not read on a terminal\n".to_vec()),
            &mut |p| {
                prompts.push(p.to_owned());
                answers
                    .next()
                    .map(|a| (*a).to_owned())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no more"))
            },
            &mut out,
        );
        (result, prompts, String::from_utf8(out).unwrap())
    }

    fn piped(input: &[u8]) -> (Result<String, AuthError>, Vec<u8>) {
        let mut cursor = Cursor::new(input.to_vec());
        let result = read_new_password_with(
            false,
            &mut cursor,
            &mut |_| panic!("no prompt without a terminal"),
            &mut io::sink(),
        );
        let mut rest = Vec::new();
        cursor.read_to_end(&mut rest).unwrap();
        (result, rest)
    }

    #[test]
    fn terminal_asks_twice() {
        let (result, prompts, out) = tty(&["s3cret-pw", "s3cret-pw"]);
        assert_eq!(result.unwrap(), "s3cret-pw");
        assert_eq!(
            prompts,
            ["New admin password: ", "Repeat the admin password: "]
        );
        assert_eq!(out, "");
    }

    #[test]
    fn terminal_mismatch_is_retried_then_refused() {
        let (result, _, out) = tty(&["s3cret-pw", "s3cret-pW", "s3cret-pw", "s3cret-pw"]);
        assert_eq!(result.unwrap(), "s3cret-pw");
        assert!(
            out.contains("do not match; type the same password twice; try again"),
            "{out}"
        );

        let (result, prompts, out) = tty(&["aaaaaaaa", "b", "aaaaaaaa", "c", "aaaaaaaa", "d"]);
        assert!(
            matches!(result, Err(AuthError::PasswordMismatch)),
            "{result:?}"
        );
        assert_eq!(prompts.len(), 6);
        assert_eq!(out.matches("try again").count(), 2, "{out}");
    }

    #[test]
    fn terminal_short_password_is_not_confirmed() {
        let (result, prompts, out) = tty(&["short", "long enough", "long enough"]);
        assert_eq!(result.unwrap(), "long enough");
        assert_eq!(
            prompts[1], "New admin password: ",
            "no confirmation of a short one"
        );
        assert!(out.contains("too short (5 characters)"), "{out}");
        let (result, _, _) = tty(&["", "", ""]);
        assert!(matches!(result, Err(AuthError::PasswordEmpty { .. })));
        let (result, _, _) = tty(&[]);
        assert!(matches!(result, Err(AuthError::Prompt(_))));
    }

    #[test]
    fn stdin_reads_exactly_one_line() {
        let (result, rest) = piped(b"password one\nsecond line\n");
        assert_eq!(result.unwrap(), "password one");
        assert_eq!(rest, b"second line\n", "only one line is consumed");
        assert_eq!(piped(b"with crlf\r\n").0.unwrap(), "with crlf");
        assert_eq!(piped(b"no newline").0.unwrap(), "no newline");
        assert_eq!(piped(b" spaces kept \n").0.unwrap(), " spaces kept ");
    }

    #[test]
    fn stdin_problems() {
        assert!(matches!(piped(b"").0, Err(AuthError::NoPasswordInput)));
        assert!(matches!(
            piped(b"\nsecond\n").0,
            Err(AuthError::PasswordEmpty { .. })
        ));
        assert!(matches!(
            piped(b"short\n").0,
            Err(AuthError::PasswordTooShort { len: 5, .. })
        ));
        assert!(matches!(
            piped(b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\n").0,
            Err(AuthError::Prompt(_))
        ));
        let long = vec![b'a'; MAX_LINE + 10];
        let err = piped(&long).0.unwrap_err();
        assert!(err.to_string().contains("longer than 4096 bytes"), "{err}");
        let mut exact = vec![b'a'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(piped(&exact).0.unwrap().len(), MAX_LINE);
    }
}
