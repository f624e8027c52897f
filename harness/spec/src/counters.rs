//! The MIB counters the harness knows, and the strict-counter rule.
//!
//! Every `MPTcpExt` counter has a [`Class`]. The rule, written once here and applied by the
//! judge to every host of every case unless the case turns it off:
//!
//! > An `Error` or `Fallback` counter that the case does not name must not move.
//!
//! `Activity` counters (handshakes, joins, ADD_ADDR, ...) and `Gauge`s are only checked when
//! a case names them. `Noise` counters are error-like but happen on a healthy kernel under
//! load (retransmissions, out-of-order queueing, window sharing), so they are exempt: that
//! exemption list is [`Class::Noise`] below, and nowhere else. A counter a newer kernel adds
//! and this table does not know is treated as `Activity`: a new kernel must not break a case
//! that does not mention it.

/// What a counter's movement means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Normal protocol activity: checked only when named.
    Activity,
    /// Something went wrong (bad HMAC, drop, reset, checksum error): strict.
    Error,
    /// The connection fell back to TCP, or an MPTCP feature was given up: strict.
    Fallback,
    /// Error-like but expected under load (retransmits, OFO, window sharing): exempt.
    Noise,
    /// A gauge, not a counter (goes up and down): checked only when named.
    Gauge,
}

impl Class {
    /// Whether the strict rule applies to counters of this class.
    pub fn is_strict(self) -> bool {
        matches!(self, Class::Error | Class::Fallback)
    }
}

use Class::*;

/// Every `MPTcpExt` counter known to the harness (order of net/mptcp/mib.c), with its class.
pub const MPTCP_COUNTERS: &[(&str, Class)] = &[
    ("MPTcpExtMPCapableSYNRX", Activity),
    ("MPTcpExtMPCapableSYNTX", Activity),
    ("MPTcpExtMPCapableSYNACKRX", Activity),
    ("MPTcpExtMPCapableACKRX", Activity),
    ("MPTcpExtMPCapableFallbackACK", Fallback),
    ("MPTcpExtMPCapableFallbackSYNACK", Fallback),
    ("MPTcpExtMPCapableSYNTXDrop", Fallback),
    ("MPTcpExtMPCapableSYNTXDisabled", Fallback),
    ("MPTcpExtMPCapableEndpAttempt", Error),
    ("MPTcpExtMPFallbackTokenInit", Fallback),
    ("MPTcpExtMPTCPRetrans", Noise),
    ("MPTcpExtMPJoinNoTokenFound", Error),
    ("MPTcpExtMPJoinSynRx", Activity),
    ("MPTcpExtMPJoinSynBackupRx", Activity),
    ("MPTcpExtMPJoinSynAckRx", Activity),
    ("MPTcpExtMPJoinSynAckBackupRx", Activity),
    ("MPTcpExtMPJoinSynAckHMacFailure", Error),
    ("MPTcpExtMPJoinAckRx", Activity),
    ("MPTcpExtMPJoinAckHMacFailure", Error),
    ("MPTcpExtMPJoinRejected", Error),
    ("MPTcpExtMPJoinSynTx", Activity),
    ("MPTcpExtMPJoinSynTxCreatSkErr", Error),
    ("MPTcpExtMPJoinSynTxBindErr", Error),
    ("MPTcpExtMPJoinSynTxConnectErr", Error),
    ("MPTcpExtDSSNotMatching", Error),
    ("MPTcpExtDSSCorruptionFallback", Fallback),
    ("MPTcpExtDSSCorruptionReset", Error),
    ("MPTcpExtInfiniteMapTx", Fallback),
    ("MPTcpExtInfiniteMapRx", Fallback),
    ("MPTcpExtDSSNoMatchTCP", Error),
    ("MPTcpExtDataCsumErr", Error),
    ("MPTcpExtOFOQueueTail", Noise),
    ("MPTcpExtOFOQueue", Noise),
    ("MPTcpExtOFOMerge", Noise),
    ("MPTcpExtNoDSSInWindow", Noise),
    ("MPTcpExtDuplicateData", Noise),
    ("MPTcpExtAddAddr", Activity),
    ("MPTcpExtAddAddrTx", Activity),
    ("MPTcpExtAddAddrTxDrop", Error),
    ("MPTcpExtEchoAdd", Activity),
    ("MPTcpExtEchoAddTx", Activity),
    ("MPTcpExtEchoAddTxDrop", Error),
    ("MPTcpExtPortAdd", Activity),
    ("MPTcpExtAddAddrDrop", Error),
    ("MPTcpExtMPJoinPortSynRx", Activity),
    ("MPTcpExtMPJoinPortSynAckRx", Activity),
    ("MPTcpExtMPJoinPortAckRx", Activity),
    ("MPTcpExtMismatchPortSynRx", Error),
    ("MPTcpExtMismatchPortAckRx", Error),
    ("MPTcpExtRmAddr", Activity),
    ("MPTcpExtRmAddrDrop", Error),
    ("MPTcpExtRmAddrTx", Activity),
    ("MPTcpExtRmAddrTxDrop", Error),
    ("MPTcpExtRmSubflow", Activity),
    ("MPTcpExtMPPrioTx", Activity),
    ("MPTcpExtMPPrioRx", Activity),
    ("MPTcpExtMPFailTx", Error),
    ("MPTcpExtMPFailRx", Error),
    ("MPTcpExtMPFastcloseTx", Error),
    ("MPTcpExtMPFastcloseRx", Error),
    ("MPTcpExtMPRstTx", Error),
    ("MPTcpExtMPRstRx", Error),
    ("MPTcpExtRcvPruned", Noise),
    ("MPTcpExtSubflowStale", Error),
    ("MPTcpExtSubflowRecover", Activity),
    ("MPTcpExtSndWndShared", Noise),
    ("MPTcpExtRcvWndShared", Noise),
    ("MPTcpExtRcvWndConflictUpdate", Noise),
    ("MPTcpExtRcvWndConflict", Noise),
    ("MPTcpExtMPCurrEstab", Gauge),
    ("MPTcpExtBlackhole", Error),
    ("MPTcpExtMPCapableDataFallback", Fallback),
    ("MPTcpExtMD5SigFallback", Fallback),
    ("MPTcpExtDssFallback", Fallback),
    ("MPTcpExtSimultConnectFallback", Fallback),
    ("MPTcpExtFallbackFailed", Fallback),
    ("MPTcpExtWinProbe", Noise),
];

/// `Tcp` (snmp) and `TcpExt` (netstat) field names as Linux 6.18 prints them; a case may
/// name `Tcp<Field>` / `TcpExt<Field>` counters from these lists.
pub const TCP_FIELDS: &str = "RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens \
AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors";

/// See [`TCP_FIELDS`].
pub const TCPEXT_FIELDS: &str = "SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts \
PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled \
TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs \
DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits TCPPureAcks TCPHPAcks \
TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder TCPRenoReorder TCPTSReorder \
TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo TCPLostRetransmit TCPRenoFailures \
TCPSackFailures TCPLossFailures TCPFastRetrans TCPSlowStartRetrans TCPTimeouts TCPLossProbes \
TCPLossProbeRecovery TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed \
TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv \
TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger \
TCPAbortFailed TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld \
TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure \
TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop \
TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow TCPReqQFullDoCookies \
TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue TCPOFODrop TCPOFOMerge \
TCPChallengeACK TCPSYNChallenge TCPFastOpenActive TCPFastOpenActiveFail TCPFastOpenPassive \
TCPFastOpenPassiveFail TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole \
TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv \
TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent TCPHystartTrainDetect \
TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd TCPACKSkippedSynRecv \
TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2 TCPACKSkippedTimeWait \
TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail TCPMTUPSuccess TCPDelivered \
TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop TCPRcvQDrop TCPWqueueTooBig \
TCPFastOpenPassiveAltKey TcpTimeoutRehash TcpDuplicateDataRehash TCPDSACKRecvSegs \
TCPDSACKIgnoredDubious TCPMigrateReqSuccess TCPMigrateReqFailure TCPPLBRehash TCPAORequired \
TCPAOBad TCPAOKeyNotFound TCPAOGood TCPAODroppedIcmps";

/// The class of a known `MPTcpExt` counter.
pub fn class_of(name: &str) -> Option<Class> {
    MPTCP_COUNTERS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Whether a case may name this counter: a known `MPTcpExt`, `TcpExt` or `Tcp` name.
pub fn is_known(name: &str) -> bool {
    if name.starts_with("MPTcpExt") {
        return class_of(name).is_some();
    }
    if let Some(f) = name.strip_prefix("TcpExt") {
        return TCPEXT_FIELDS.split_whitespace().any(|x| x == f);
    }
    if let Some(f) = name.strip_prefix("Tcp") {
        return TCP_FIELDS.split_whitespace().any(|x| x == f);
    }
    false
}

/// The known name closest to a misspelt one, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<String> {
    let candidates = MPTCP_COUNTERS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .chain(TCPEXT_FIELDS.split_whitespace().map(|f| format!("TcpExt{f}")))
        .chain(TCP_FIELDS.split_whitespace().map(|f| format!("Tcp{f}")));
    let lower = name.to_ascii_lowercase();
    candidates
        .map(|c| (distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {

    #[test]
    fn gauges_do_not_only_grow() {
        assert!(only_grows("MPTcpExtMPJoinAckRx"));
        assert!(!only_grows("MPTcpExtMPCurrEstab"));
        assert!(only_grows("TcpExtTCPSynRetrans"));
        assert!(!only_grows("TcpCurrEstab"));
        assert_eq!(crate::case::CounterExpect::Eq(2).upper_bound(), Some(2));
        assert_eq!(crate::case::CounterExpect::Range { min: Some(1), max: None }.upper_bound(), None);
        assert_eq!(crate::case::CounterExpect::Any.upper_bound(), None);
    }
    use super::*;

    #[test]
    fn catalogue_matches_linux_6_18_count() {
        // 76 counters on 6.18 (/proc/net/netstat), plus RcvPruned which 6.18 dropped.
        assert_eq!(MPTCP_COUNTERS.len(), 77);
        let mut names: Vec<_> = MPTCP_COUNTERS.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 77, "duplicate counter names");
    }

    #[test]
    fn classes() {
        assert_eq!(class_of("MPTcpExtMPCapableFallbackACK"), Some(Class::Fallback));
        assert!(class_of("MPTcpExtMPRstTx").unwrap().is_strict());
        assert!(!class_of("MPTcpExtMPTCPRetrans").unwrap().is_strict());
        assert!(!class_of("MPTcpExtMPJoinSynRx").unwrap().is_strict());
        assert_eq!(class_of("MPTcpExtNew"), None);
    }

    #[test]
    fn known_names_and_suggestions() {
        assert!(is_known("MPTcpExtMPJoinSynRx"));
        assert!(is_known("TcpExtSyncookiesSent"));
        assert!(is_known("TcpAttemptFails"));
        assert!(!is_known("MPTcpExtMPJoinSynRX"));
        assert!(!is_known("IpExtInOctets"));
        assert_eq!(suggest("MPTcpExtMPJoinSynRX").as_deref(), Some("MPTcpExtMPJoinSynRx"));
        assert_eq!(suggest("MPTcpExtMPCapableSynRx").as_deref(), Some("MPTcpExtMPCapableSYNRX"));
        assert_eq!(suggest("zzzzzzzzzzzzzzzzzzzzzzzzzzzzz"), None);
    }
}

/// The counters a `wait_counter` key adds up: `"A + B"` is the sum of A and B (e.g. the
/// ways one attempt can fail), a plain name is itself.
pub fn sum_parts(key: &str) -> Vec<&str> {
    key.split('+').map(str::trim).collect()
}

/// Whether a counter only grows (its delta over a case never decreases): the MPTCP
/// catalogue's counters that are not gauges, and the TcpExt row (all event counters).
pub fn only_grows(name: &str) -> bool {
    match class_of(name) {
        Some(Class::Gauge) => false,
        Some(_) => true,
        None => name.starts_with("TcpExt"),
    }
}
