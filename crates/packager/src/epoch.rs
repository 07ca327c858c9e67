//! The PROGRAM-DATE-TIME epoch of a stream (proposed by its first publish session, kept through
//! reconnects), and how origins fed the same input agree
//! on it.
//!
//! A segment's PDT is `epoch + its first decode time` (in ms on the publisher's timeline), so
//! origins that cut the same segments (see the segmenter's rule) print the same PDT once they
//! share the epoch. Each origin *proposes* `wall clock − decode time` of the first unit it
//! receives. With no peers configured the proposal is the epoch. With peers, an agreement runs
//! while the segmenter probes the first GOP (nothing is published yet):
//!
//! 1. The origin asks every peer, sending its own proposal. A peer that has *committed* an
//!    epoch for the stream answers it; one still deciding answers its proposal and remembers the
//!    asker's; one without the stream answers that it does not know it.
//! 2. The origin commits: a committed answer if there is one (a peer that has been publishing
//!    the stream for a while: late starters adopt its epoch), else the lowest proposal it has
//!    seen (its own, the answers, and the proposals of peers that asked it).
//!
//! For two origins this is race-free: if A commits before B asks, B adopts A's epoch; if B
//! asks first, A has heard B's proposal and both take the lower of the two. When no answer has
//! come by the time the first part is published (a peer is down or slower than one GOP), the
//! origin commits with what it has and logs that its PDT may differ from its peers'. Proposals
//! more than [`MAX_SKEW_MS`] away from the origin's own are ignored (clock trouble, or a
//! different session of the stream).

/// Proposals further than this from our own are not considered.
pub const MAX_SKEW_MS: i64 = 10_000;

/// What a peer says about its epoch for a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochAnswer {
    /// The peer publishes the stream with this epoch (Unix ms), for good.
    Committed(i64),
    /// The peer is still agreeing; this is its proposal.
    Proposed(i64),
    /// The peer has no live session of the stream (or did not answer).
    Unknown,
}

impl EpochAnswer {
    /// Text form used on the wire (`committed 123`, `proposed 123`, `unknown`).
    pub fn to_text(self) -> String {
        match self {
            Self::Committed(e) => format!("committed {e}"),
            Self::Proposed(e) => format!("proposed {e}"),
            Self::Unknown => "unknown".to_string(),
        }
    }

    /// Parses the text form; anything else is `Unknown`.
    pub fn parse(text: &str) -> Self {
        let mut w = text.split_ascii_whitespace();
        match (w.next(), w.next().and_then(|n| n.parse().ok()), w.next()) {
            (Some("committed"), Some(e), None) => Self::Committed(e),
            (Some("proposed"), Some(e), None) => Self::Proposed(e),
            _ => Self::Unknown,
        }
    }
}

/// Agreement state of one publish session.
#[derive(Debug, Default, Clone)]
pub struct Epoch {
    proposal: Option<i64>,
    heard: Option<i64>,
    committed: Option<i64>,
}

impl Epoch {
    /// Records our proposal (first unit of the session); later calls do nothing. True when
    /// this call made the proposal.
    pub fn propose(&mut self, epoch_ms: i64) -> bool {
        let first = self.proposal.is_none();
        self.proposal.get_or_insert(epoch_ms);
        first
    }

    /// Nothing proposed yet (the next unit's arrival proposes).
    pub fn unproposed(&self) -> bool {
        self.proposal.is_none()
    }

    /// Our proposal, while it is not committed.
    pub fn pending(&self) -> Option<i64> {
        self.proposal.filter(|_| self.committed.is_none())
    }

    /// The committed epoch.
    pub fn committed(&self) -> Option<i64> {
        self.committed
    }

    fn consider(&mut self, e: i64) {
        if self.proposal.is_none_or(|p| (e - p).abs() <= MAX_SKEW_MS) {
            self.heard = Some(self.heard.map_or(e, |h| h.min(e)));
        }
    }

    /// A peer asks, sending its proposal: our answer.
    pub fn answer(&mut self, peer_proposal: Option<i64>) -> EpochAnswer {
        if let Some(e) = self.committed {
            return EpochAnswer::Committed(e);
        }
        if let Some(p) = peer_proposal {
            self.consider(p);
        }
        match self.proposal {
            Some(p) => EpochAnswer::Proposed(p),
            None => EpochAnswer::Unknown,
        }
    }

    /// Commits from the peers' answers (see the module doc); returns the epoch. Does nothing
    /// (returning the committed epoch) once committed, or (returning `None`) before a proposal.
    pub fn commit(&mut self, answers: &[EpochAnswer]) -> Option<i64> {
        if self.committed.is_some() {
            return self.committed;
        }
        let own = self.proposal?;
        let near = |e: &i64| (e - own).abs() <= MAX_SKEW_MS;
        let adopted = answers
            .iter()
            .filter_map(|a| match a {
                EpochAnswer::Committed(e) => Some(*e),
                _ => None,
            })
            .filter(near)
            .min();
        let lowest = answers
            .iter()
            .filter_map(|a| match a {
                EpochAnswer::Proposed(e) => Some(*e),
                _ => None,
            })
            .chain(self.heard)
            .filter(near)
            .fold(own, i64::min);
        self.committed = Some(adopted.unwrap_or(lowest));
        self.committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        for a in [
            EpochAnswer::Committed(1_700_000_000_123),
            EpochAnswer::Proposed(-5),
            EpochAnswer::Unknown,
        ] {
            assert_eq!(EpochAnswer::parse(&a.to_text()), a);
        }
        assert_eq!(EpochAnswer::parse("committed"), EpochAnswer::Unknown);
        assert_eq!(EpochAnswer::parse("committed 1 2"), EpochAnswer::Unknown);
        assert_eq!(EpochAnswer::parse("<html>"), EpochAnswer::Unknown);
    }

    #[test]
    fn alone_commits_its_own_proposal() {
        let mut e = Epoch::default();
        assert_eq!(e.commit(&[]), None, "nothing to commit before a proposal");
        assert!(e.propose(1000));
        assert!(!e.propose(2000));
        assert_eq!(e.pending(), Some(1000));
        assert_eq!(e.commit(&[EpochAnswer::Unknown]), Some(1000));
        assert_eq!(e.pending(), None);
        assert_eq!(e.answer(Some(10)), EpochAnswer::Committed(1000));
    }

    #[test]
    fn late_starter_adopts_a_committed_epoch() {
        let mut e = Epoch::default();
        e.propose(5_040);
        assert_eq!(
            e.commit(&[EpochAnswer::Committed(5_000), EpochAnswer::Proposed(4_000)]),
            Some(5_000)
        );
    }

    /// Both orders of a simultaneous start end with the same epoch on both origins.
    #[test]
    fn simultaneous_start_agrees_on_the_lowest() {
        // B asks A before A commits
        let (mut a, mut b) = (Epoch::default(), Epoch::default());
        a.propose(1_030);
        b.propose(1_010);
        let b_hears = a.answer(b.pending());
        let a_hears = b.answer(a.pending());
        assert_eq!(a.commit(&[a_hears]), b.commit(&[b_hears]));
        assert_eq!(a.committed(), Some(1_010));
        // A asks B before B has the stream: A commits alone, B adopts it
        let (mut a, mut b) = (Epoch::default(), Epoch::default());
        a.propose(1_030);
        let a_hears = b.answer(a.pending());
        assert_eq!(a_hears, EpochAnswer::Unknown);
        assert_eq!(a.commit(&[a_hears]), Some(1_030));
        b.propose(1_010);
        let b_hears = a.answer(b.pending());
        assert_eq!(b.commit(&[b_hears]), Some(1_030));
        // A asks B before B has the stream, B asks A before A commits: A has heard B
        let (mut a, mut b) = (Epoch::default(), Epoch::default());
        a.propose(1_030);
        let a_hears = b.answer(a.pending());
        b.propose(1_010);
        let b_hears = a.answer(b.pending());
        assert_eq!(b.commit(&[b_hears]), Some(1_010));
        assert_eq!(a.commit(&[a_hears]), Some(1_010));
    }

    #[test]
    fn far_proposals_are_ignored() {
        let mut e = Epoch::default();
        e.propose(100_000);
        e.answer(Some(100_000 - MAX_SKEW_MS - 1));
        assert_eq!(
            e.commit(&[
                EpochAnswer::Committed(0),
                EpochAnswer::Proposed(100_000 + MAX_SKEW_MS + 1)
            ]),
            Some(100_000)
        );
    }
}
