//! How callers watch the generation loop without owning a copy of it: the loop reports every
//! step to an [`Observer`] (streaming text, statistics of the model's distribution, progress).

/// One sampling step of one job, as the loop saw it.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// Index of the job in the call (not in its batch).
    pub job: usize,
    /// The model's logits row, before the stop mask and the watermark.
    pub logits: &'a [f32],
    /// Whether stop tokens were masked out of this draw (the job had fewer than `min_tokens`).
    pub stops_masked: bool,
    /// The token drawn.
    pub token: u32,
    /// Whether `token` is a stop token: the job ends here and `token` is not part of its text.
    pub stopped: bool,
}

/// Receives what the generation loop does, step by step.
pub trait Observer {
    /// Called for every token drawn, stop tokens included, in the loop's order.
    fn step(&mut self, step: &Step<'_>);

    /// Called after each batch: `done` of the call's `total` jobs are finished.
    fn batch_done(&mut self, done: usize, total: usize) {
        let _ = (done, total);
    }
}

/// Watches nothing.
impl Observer for () {
    fn step(&mut self, _: &Step<'_>) {}
}

impl<O: Observer + ?Sized> Observer for &mut O {
    fn step(&mut self, step: &Step<'_>) {
        (**self).step(step);
    }

    fn batch_done(&mut self, done: usize, total: usize) {
        (**self).batch_done(done, total);
    }
}

/// An observer from a closure called with `(job, token)` for each token a text keeps (stop
/// tokens are not reported): enough for streaming.
#[derive(Clone, Debug)]
pub struct Tokens<F>(pub F);

impl<F: FnMut(usize, u32)> Observer for Tokens<F> {
    fn step(&mut self, step: &Step<'_>) {
        if !step.stopped {
            (self.0)(step.job, step.token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_skips_stop_tokens() {
        let mut seen = Vec::new();
        let mut observer = Tokens(|job, token| seen.push((job, token)));
        for (token, stopped) in [(4, false), (2, true)] {
            observer.step(&Step {
                job: 3,
                logits: &[],
                stops_masked: false,
                token,
                stopped,
            });
        }
        assert_eq!(seen, vec![(3, 4)]);
    }
}
