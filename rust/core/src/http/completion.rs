//! What one request produced, whatever the provider: distilabel's `GenerateOutput` shape.

/// One alternative token at one position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
}

/// One request's result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    /// One per choice; `None` when the provider sent no content.
    pub generations: Vec<Option<String>>,
    /// Finish reason of each choice that had no content (logged as a warning).
    pub empty_finish_reasons: Vec<Option<String>>,
    /// Per request, not per choice (as distilabel reports it); 0 without usage.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Per choice that has logprobs: per position, the top alternatives (`None` for a
    /// position the provider left empty).
    pub logprobs: Vec<Vec<Option<Vec<TokenLogprob>>>>,
}

impl Completion {
    /// An empty completion with these token counts.
    pub fn counting(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            ..Self::default()
        }
    }

    /// Tokens used by the request, reconciled against a tokens-per-minute reservation.
    pub fn used_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}
