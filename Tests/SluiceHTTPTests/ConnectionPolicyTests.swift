import Testing
@testable import SluiceHTTP

/// The connection guard's timing rules, driven with explicit times (nanoseconds).
@Suite struct ConnectionPolicyTests {
    let s: UInt64 = 1_000_000_000

    @Test func headAndIdleTimeouts() {
        var p = ConnectionPolicy(limits: ConnectionLimits(), now: 0)
        let (at9, at10) = (p.tick(at: 9 * s), p.tick(at: 10 * s))
        #expect(!at9 && at10)  // a fresh connection must send a head
        p = ConnectionPolicy(limits: ConnectionLimits(), now: 0)
        p.bytesArrived(5, at: 1 * s)  // a head begun: 10 s from its first byte
        let (head10, head11) = (p.tick(at: 10 * s), p.tick(at: 11 * s))
        #expect(!head10 && head11)
        p.headArrived()
        let (closeAtEnd, early) = (p.requestEnded(), p.answerStarted())
        #expect(!closeAtEnd && !early)  // the body was read first: not early
        p.answerEnded(at: 12 * s)
        let (idle71, idle72) = (p.tick(at: 71 * s), p.tick(at: 72 * s))
        #expect(p.evictable && !idle71 && idle72)  // keep-alive idle: 60 s
    }

    @Test func aSlowBodyIsCutButServerBackpressureIsNotHeldAgainstTheClient() {
        var p = ConnectionPolicy(limits: ConnectionLimits(), now: 0)
        p.bytesArrived(100, at: 0)
        p.headArrived()
        let backpressure = p.tick(at: 60 * s)
        #expect(!backpressure)  // no read asked for: the server is the slow one
        p.readAsked(at: 60 * s)
        p.bytesArrived(5_000, at: 61 * s)
        p.readAsked(at: 61 * s)
        let (slow69, slow70) = (p.tick(at: 69 * s), p.tick(at: 70 * s))
        #expect(!slow69 && slow70)  // 5,000 bytes in 10 s of waiting on the client: under 1 KiB/s
        var fast = ConnectionPolicy(limits: ConnectionLimits(), now: 0)
        fast.bytesArrived(100, at: 0)
        fast.headArrived()
        fast.readAsked(at: 0)
        fast.bytesArrived(20_000, at: 10 * s)
        fast.readAsked(at: 10 * s)
        let fastClosed = fast.tick(at: 10 * s)
        #expect(!fastClosed && !fast.evictable)
    }

    @Test func anEarlyAnswerDrainsTheBodyThenCloses() {
        var p = ConnectionPolicy(limits: ConnectionLimits(), now: 0)
        p.bytesArrived(100, at: 0)
        p.headArrived()
        let early = p.answerStarted()
        #expect(early)  // a 413 while the body still arrives
        p.answerEnded(at: 1 * s)
        p.bytesArrived(1 << 20, at: 2 * s)
        let (draining, drained) = (p.tick(at: 2 * s), p.requestEnded())
        #expect(!draining && drained)  // the whole body drained: close
        var big = ConnectionPolicy(limits: ConnectionLimits(), now: 0)
        big.headArrived()
        _ = big.answerStarted()
        big.answerEnded(at: 0)
        big.bytesArrived(33 << 20, at: 1 * s)
        let pastBound = big.tick(at: 1 * s)
        #expect(pastBound)  // past the 32 MiB drain bound
    }
}
