//! METEOR 1.5 as pycocoevalcap computes it: the scoring is done by `meteor-1.5.jar`
//! (with its English paraphrase table `data/paraphrase-en.gz` next to it), run as
//! `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm` in the jar's folder and
//! driven through its line protocol:
//!
//! * per sample, `SCORE ||| ref 1 ||| ... ||| ref n ||| candidate` (the candidate with
//!   `|||` removed and double spaces collapsed once), answered by a line of statistics;
//! * then `EVAL ||| stats 1 ||| ... ||| stats N`, answered by one score per sample and
//!   then the set's score (METEOR of the pooled statistics, not the mean of the
//!   per-sample scores).
//!
//! The jar and the paraphrase table cannot be shipped with this crate. The jar is
//! found from the `OMG_METEOR_JAR` environment variable (pycocoevalcap's pip package
//! has both files in `pycocoevalcap/meteor/`); without it, or without `java`, the
//! metric is reported unavailable with the reason, never as a number.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::{CaptionSample, EvalError, MetricValue};

/// Environment variable naming the path of `meteor-1.5.jar`.
pub const METEOR_JAR_ENV: &str = "OMG_METEOR_JAR";

/// METEOR over a set and per sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeteorScores {
    /// The set's score.
    pub score: f64,
    /// Each sample's score, in input order.
    pub per_sample: Vec<f64>,
}

/// The jar named by [`METEOR_JAR_ENV`], or why there is none (the reason of an
/// unavailable METEOR).
pub fn find_meteor_jar() -> Result<PathBuf, String> {
    let Some(path) = std::env::var_os(METEOR_JAR_ENV) else {
        return Err(format!(
            "METEOR needs meteor-1.5.jar and its paraphrase data, which are not shipped; \
             set {METEOR_JAR_ENV} to the jar's path"
        ));
    };
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{METEOR_JAR_ENV} names {}, which is not a file",
            path.display()
        ))
    }
}

/// A running METEOR scorer (the Java process).
pub struct Meteor {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Meteor {
    /// Starts `java -jar -Xmx2G <jar> - - -stdio -l en -norm` in the jar's folder.
    ///
    /// Fails with [`EvalError::Meteor`] when `java` cannot be started.
    pub fn spawn(jar: &Path) -> Result<Self, EvalError> {
        let dir = jar.parent().unwrap_or(Path::new("."));
        let name = jar
            .file_name()
            .ok_or_else(|| EvalError::Meteor(format!("{} is not a file path", jar.display())))?;
        let mut child = Command::new("java")
            .arg("-jar")
            .arg("-Xmx2G")
            .arg(name)
            .args(["-", "-", "-stdio", "-l", "en", "-norm"])
            .current_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EvalError::Meteor(format!("cannot start java: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(EvalError::Meteor(
                "no pipes to the java process".to_string(),
            ));
        };
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Scores tokenized samples (see [`CaptionSample::ptb_tokenized`]).
    ///
    /// Fails with [`EvalError::Empty`] without samples, [`EvalError::Invalid`] when a
    /// sample has no reference, and [`EvalError::Meteor`] when the process stops or
    /// answers something that is not a number.
    pub fn score(&mut self, samples: &[CaptionSample]) -> Result<MeteorScores, EvalError> {
        if samples.is_empty() {
            return Err(EvalError::Empty("METEOR".to_string()));
        }
        if let Some(i) = samples.iter().position(|s| s.references.is_empty()) {
            return Err(EvalError::Invalid(format!(
                "METEOR: caption sample {i} has no reference"
            )));
        }
        let mut eval_line = String::from("EVAL");
        for s in samples {
            let candidate = s.candidate.replace("|||", "").replace("  ", " ");
            let line = format!("SCORE ||| {} ||| {candidate}", s.references.join(" ||| "));
            self.send(&line)?;
            eval_line.push_str(" ||| ");
            eval_line.push_str(self.receive()?.trim());
        }
        self.send(&eval_line)?;
        let per_sample = (0..samples.len())
            .map(|_| self.receive_number())
            .collect::<Result<Vec<_>, _>>()?;
        let score = self.receive_number()?;
        Ok(MeteorScores { score, per_sample })
    }

    fn send(&mut self, line: &str) -> Result<(), EvalError> {
        // One line per request: a newline inside a caption would break the protocol.
        let line = line.replace(['\n', '\r'], " ");
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| EvalError::Meteor(format!("writing to the scorer: {e}")))
    }

    fn receive(&mut self) -> Result<String, EvalError> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| EvalError::Meteor(format!("reading from the scorer: {e}")))?;
        if n == 0 {
            return Err(EvalError::Meteor(format!(
                "the scorer stopped: {}",
                self.stderr_text()
            )));
        }
        Ok(line)
    }

    fn receive_number(&mut self) -> Result<f64, EvalError> {
        let line = self.receive()?;
        line.trim()
            .parse()
            .map_err(|_| EvalError::Meteor(format!("expected a score, got {:?}", line.trim())))
    }

    /// The end of the process's error output (after it stopped).
    fn stderr_text(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        let text = text.trim();
        let start = text.char_indices().rev().nth(500).map_or(0, |(i, _)| i);
        text[start..].to_string()
    }
}

impl Drop for Meteor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// METEOR of tokenized samples as a report value: the set's score when a jar is given
/// and scoring works, otherwise unavailable with the reason.
pub fn meteor_metric(samples: &[CaptionSample], jar: Result<&Path, &str>) -> MetricValue {
    let jar = match jar {
        Ok(jar) => jar,
        Err(reason) => return MetricValue::unavailable(reason),
    };
    match Meteor::spawn(jar).and_then(|mut m| m.score(samples)) {
        Ok(s) => MetricValue::value(s.score),
        Err(e) => MetricValue::unavailable(e.to_string()),
    }
}
