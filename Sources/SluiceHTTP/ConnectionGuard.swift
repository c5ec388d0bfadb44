import NIOCore
import NIOHTTPTypes
import HTTPTypes
import Synchronization
import Foundation

/// How long clients may take and how many may be connected: what keeps slow or idle
/// connections (slowloris) from starving the API. Defaults follow Apache's mod_reqtimeout
/// and nginx's keep-alive.
public struct ConnectionLimits: Sendable {
    /// From the first byte of a request (or the connection's start) to its complete head.
    public var headerTimeout: Duration = .seconds(10)
    /// An idle keep-alive connection is closed after this long.
    public var idleTimeout: Duration = .seconds(60)
    /// A body slower than this over `bodyRateWindow` of waiting on the client is cut.
    public var minBodyBytesPerSecond = 1_024
    public var bodyRateWindow: Duration = .seconds(10)
    /// Open connections at most (the process's descriptor limit sets the default).
    public var maxConnections = 1_000
    /// Of `maxConnections`, how many only health checks (`/healthz`, `/readyz`) may use.
    public var healthReserve = 16
    /// After an early answer (413 while the body still arrives), read and drop this much
    /// more of the body, so that clients that send it all first still read the answer.
    public var drainBytes: Int64 = 32 << 20
    public var drainTimeout: Duration = .seconds(15)

    public init() {}

    /// Limits for a process allowed `descriptors` open files: connections get all but 128
    /// (kept for the database, uploads and downloads).
    public static func forDescriptorLimit(_ descriptors: Int) -> ConnectionLimits {
        var l = ConnectionLimits()
        // Sockets closed under churn hold their descriptor a moment longer: keep a quarter spare.
        l.maxConnections = max(64, (descriptors - 128) * 3 / 4)
        l.healthReserve = min(16, l.maxConnections / 8)
        return l
    }
}

/// One connection's timing rules as a pure state machine: events come in with the time
/// (nanoseconds), `tick` says whether to close and why. No I/O, no clock of its own.
struct ConnectionPolicy {
    enum Phase: Equatable {
        /// No request in progress; `since` is when the last one ended (or the connection began).
        case idle(since: UInt64, fresh: Bool)
        /// Some bytes of a request head arrived at `since`.
        case readingHead(since: UInt64)
        /// The head is in; the body is arriving.
        case readingBody
        /// The request is read; the handler is answering (no client timeout applies).
        case answering
        /// An early answer went out while the body still arrived: drop the rest, up to a bound.
        case draining(since: UInt64, bytes: Int64)
    }

    let limits: ConnectionLimits
    var phase: Phase
    /// The answer to the current request started before its body was read.
    var earlyAnswer = false
    /// Body rate: bytes and nanoseconds spent waiting on the client in the current window.
    var windowBytes: Int64 = 0
    var windowWait: UInt64 = 0
    /// When the current outstanding read was asked for (nil: none outstanding).
    var readAskedAt: UInt64?

    init(limits: ConnectionLimits, now: UInt64) {
        self.limits = limits
        phase = .idle(since: now, fresh: true)
    }

    static func nanos(_ d: Duration) -> UInt64 {
        let c = d.components
        return UInt64(max(0, c.seconds)) * 1_000_000_000 + UInt64(max(0, c.attoseconds) / 1_000_000_000)
    }

    /// The channel asked the socket for more bytes.
    mutating func readAsked(at now: UInt64) {
        if readAskedAt == nil { readAskedAt = now }
    }

    /// `count` raw bytes arrived from the client.
    mutating func bytesArrived(_ count: Int, at now: UInt64) {
        if let asked = readAskedAt {
            if case .readingBody = phase { windowWait += now &- asked }
            readAskedAt = nil
        }
        switch phase {
        case .idle: phase = .readingHead(since: now)
        case .readingBody: windowBytes += Int64(count)
        case .draining(let since, let bytes): phase = .draining(since: since, bytes: bytes + Int64(count))
        case .readingHead, .answering: break
        }
    }

    mutating func headArrived() {
        phase = .readingBody
        earlyAnswer = false
        windowBytes = 0
        windowWait = 0
    }

    /// The request's end arrived; true when the connection should close now (a drain finished).
    mutating func requestEnded() -> Bool {
        if case .draining = phase { return true }
        phase = .answering
        return false
    }

    /// The answer's head is going out; true when it is early (the body is still arriving),
    /// so the answer must carry `Connection: close` and the rest of the body be drained.
    mutating func answerStarted() -> Bool {
        if case .readingBody = phase { earlyAnswer = true }
        return earlyAnswer
    }

    /// The answer's end went out: drain the rest of an early answer's body, else wait for the
    /// next request.
    mutating func answerEnded(at now: UInt64) {
        phase = earlyAnswer ? .draining(since: now, bytes: 0) : .idle(since: now, fresh: false)
    }

    /// Whether the connection must close at `now`: no request head in time (a fresh connection
    /// or a head begun), idle too long, a body too slow, or an early answer's drain done.
    mutating func tick(at now: UInt64) -> Bool {
        switch phase {
        case .idle(let since, let fresh):
            return now &- since >= Self.nanos(fresh ? limits.headerTimeout : limits.idleTimeout)
        case .readingHead(let since):
            return now &- since >= Self.nanos(limits.headerTimeout)
        case .readingBody:
            var wait = windowWait
            if let asked = readAskedAt { wait += now &- asked }
            let window = Self.nanos(limits.bodyRateWindow)
            if wait >= window {
                let rate = Double(windowBytes) / (Double(wait) / 1e9)
                if rate < Double(limits.minBodyBytesPerSecond) { return true }
                windowBytes = 0
                windowWait = 0
                if readAskedAt != nil { readAskedAt = now }
            }
            return false
        case .answering:
            return false
        case .draining(let since, let bytes):
            return bytes > limits.drainBytes || now &- since >= Self.nanos(limits.drainTimeout)
        }
    }

    /// Nothing is in progress: the connection may be closed to make room for another.
    var evictable: Bool {
        switch phase {
        case .idle, .readingHead: true
        case .readingBody, .answering, .draining: false
        }
    }
}

/// Every open connection of one server, to enforce the cap: when full, the connection idle
/// or waiting for its head the longest is closed to make room; past that, connections are
/// admitted into a small reserve that only health checks may use.
final class ConnectionRegistry: Sendable {
    struct Entry {
        var since: UInt64
        var evictable: Bool
        let close: @Sendable () -> Void
    }

    enum Admission: Equatable { case normal, healthOnly, refused }

    let limits: ConnectionLimits
    private let state = Mutex<(next: Int, open: [Int: Entry])>((0, [:]))

    init(limits: ConnectionLimits) { self.limits = limits }

    /// Registers a new connection; evicts the stalest idle one when the normal share is full.
    func admit(now: UInt64, close: @escaping @Sendable () -> Void) -> (id: Int, admission: Admission) {
        let (id, admission, victim): (Int, Admission, (@Sendable () -> Void)?) = state.withLock { s in
            let normalShare = max(1, limits.maxConnections - limits.healthReserve)
            var victim: (@Sendable () -> Void)?
            if s.open.count >= normalShare {
                var stalest: (id: Int, since: UInt64)?
                for (id, e) in s.open where e.evictable && e.since < (stalest?.since ?? .max) { stalest = (id, e.since) }
                if let stalest { victim = s.open.removeValue(forKey: stalest.id)?.close }
            }
            let admission: Admission = s.open.count < normalShare ? .normal : s.open.count < limits.maxConnections ? .healthOnly : .refused
            s.next += 1
            if admission != .refused { s.open[s.next] = Entry(since: now, evictable: true, close: close) }
            return (s.next, admission, victim)
        }
        victim?()
        return (id, admission)
    }

    /// Whether the connection may be evicted now, and since when it has been so.
    func update(_ id: Int, evictable: Bool, now: UInt64) {
        state.withLock { s in
            guard var e = s.open[id], e.evictable != evictable else { return }
            e.evictable = evictable
            e.since = now
            s.open[id] = e
        }
    }

    func remove(_ id: Int) { state.withLock { _ = $0.open.removeValue(forKey: id) } }
}

/// Applies ``ConnectionPolicy`` to one HTTP/1 connection. It sits after HTTP decoding (it sees
/// request and response parts) and puts a small byte meter at the front of the pipeline (it
/// sees raw bytes and read requests). Both run on the channel's event loop.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let registry: ConnectionRegistry
    var policy: ConnectionPolicy
    var id: Int?
    var admission: ConnectionRegistry.Admission = .normal
    var timer: Scheduled<Void>?
    var closing = false
    /// The request being dropped because it was answered here (a health-only connection).
    var swallowing = false

    init(registry: ConnectionRegistry) {
        self.registry = registry
        policy = ConnectionPolicy(limits: registry.limits, now: Self.now())
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let (id, admission) = registry.admit(now: Self.now()) { channel.close(promise: nil) }
        self.id = id
        self.admission = admission
        if admission == .refused {
            context.close(promise: nil)
            return
        }
        if admission == .healthOnly {
            var l = policy.limits
            l.headerTimeout = .seconds(2)
            policy = ConnectionPolicy(limits: l, now: Self.now())
        }
        try? context.pipeline.syncOperations.addHandler(ByteMeter(guard: self), position: .first)
        schedule(context)
    }

    /// The next check, a second from now (each check schedules the one after).
    func schedule(_ context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: .seconds(1)) { [weak self] in
            guard let self, self.timer != nil else { return }
            self.tick(context)
            if !self.closing { self.schedule(context) }
        }
    }

    /// Stops the checks and gives the connection's slot back (idempotent).
    func release() {
        timer?.cancel()
        timer = nil
        if let id { registry.remove(id) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { release() }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func tick(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        if policy.tick(at: Self.now()) { close(context) }
    }

    func close(_ context: ChannelHandlerContext) {
        closing = true
        timer?.cancel()
        context.close(promise: nil)
    }

    func publishState() {
        if let id { registry.update(id, evictable: policy.evictable, now: Self.now()) }
    }

    func readAsked() { policy.readAsked(at: Self.now()) }

    func bytesArrived(_ n: Int) {
        let wasEvictable = policy.evictable
        policy.bytesArrived(n, at: Self.now())
        if policy.evictable != wasEvictable { publishState() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            if case .draining = policy.phase { return }  // a pipelined request after an early answer: dropped
            policy.headArrived()
            publishState()
            if admission == .healthOnly && !(head.method == .get && ["/healthz", "/readyz"].contains(head.path ?? "")) {
                // The reserve is for health checks: anything else is told to come back.
                swallowing = true
                var h = HTTPFields()
                h[.connection] = "close"
                h[.retryAfter] = "1"
                h[.contentLength] = "0"
                _ = policy.answerStarted()
                context.write(wrapOutboundOut(.head(HTTPResponse(status: .serviceUnavailable, headerFields: h))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in self.close(context) }
                return
            }
            context.fireChannelRead(data)
        case .body:
            if swallowing { return }
            if case .draining = policy.phase { return }  // dropped: the answer is already out
            context.fireChannelRead(data)
        case .end:
            if swallowing { return }
            if policy.requestEnded() {
                close(context)
                return
            }
            context.fireChannelRead(data)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // While draining nobody downstream asks for more: keep reading so the client can finish.
        if case .draining = policy.phase { context.read() }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var response):
            if policy.answerStarted() {
                response.headerFields[.connection] = "close"
                context.write(wrapOutboundOut(.head(response)), promise: promise)
                return
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            let wasEarly = policy.earlyAnswer
            policy.answerEnded(at: Self.now())
            publishState()
            context.write(data, promise: promise)
            if wasEarly { context.read() }  // start draining
        }
    }
}

/// The front of the pipeline: counts raw bytes from the client and notes when the channel
/// asks for more, for the guard's header and body-rate rules.
final class ByteMeter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    weak var owner: ConnectionGuardHandler?

    init(guard owner: ConnectionGuardHandler) { self.owner = owner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner?.bytesArrived(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        owner?.readAsked()
        context.read()
    }
}

/// Raises the process's soft limit on open files to its hard limit; returns the limit now in force.
public func raiseDescriptorLimit() -> Int {
    var rl = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return 1_024 }
    if rl.rlim_cur < rl.rlim_max {
        var raised = rl
        raised.rlim_cur = rl.rlim_max
        if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { rl = raised }
    }
    return Int(clamping: rl.rlim_cur)
}
