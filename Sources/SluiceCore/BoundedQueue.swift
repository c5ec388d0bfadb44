import Foundation
import Synchronization

/// A bounded FIFO between a producer and a consumer, each either a plain thread (which
/// blocks: `push`, `pop`) or a task (which suspends: `send`, `next`). A decoder thread feeds
/// a load this way, and a load feeds PostgreSQL's COPY, with memory bounded by `capacity`.
/// Sendable by its lock: every field is read and written under `condition`.
public final class BoundedQueue<Element: Sendable>: @unchecked Sendable {
    private var items: [Element] = []
    private let capacity: Int
    private let condition = NSCondition()
    private var closed = false
    /// Tasks waiting for an element, and tasks waiting for room (with what they bring).
    private var consumers: [CheckedContinuation<Element?, Never>] = []
    private var producers: [(Element, CheckedContinuation<Bool, Never>)] = []

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Adds an element, blocking the thread while full. Returns false if the queue was closed.
    @discardableResult
    public func push(_ e: Element) -> Bool {
        condition.lock()
        while items.count >= capacity && !closed { condition.wait() }
        return admit(e)
    }

    /// Adds an element, suspending while full. Returns false if the queue was closed.
    @discardableResult
    public func send(_ e: Element) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            condition.lock()
            if items.count >= capacity && !closed {
                producers.append((e, c))
                condition.unlock()
            } else {
                c.resume(returning: admit(e))
            }
        }
    }

    /// Under the lock (released here): hands `e` to a waiting consumer or queues it.
    private func admit(_ e: Element) -> Bool {
        if closed { condition.unlock(); return false }
        if !consumers.isEmpty {
            let c = consumers.removeFirst()
            condition.unlock()
            c.resume(returning: e)
            return true
        }
        items.append(e)
        condition.broadcast()
        condition.unlock()
        return true
    }

    /// Takes the oldest element, blocking the thread until one comes; nil once closed and empty.
    public func pop() -> Element? {
        condition.lock()
        while items.isEmpty && !closed { condition.wait() }
        return take()
    }

    /// Takes the oldest element, suspending until one comes; nil once closed and empty.
    public func next() async -> Element? {
        await withCheckedContinuation { (c: CheckedContinuation<Element?, Never>) in
            condition.lock()
            if items.isEmpty && !closed {
                consumers.append(c)
                condition.unlock()
            } else {
                c.resume(returning: take())
            }
        }
    }

    /// Under the lock (released here): the oldest element, letting a waiting producer in.
    private func take() -> Element? {
        guard !items.isEmpty else { condition.unlock(); return nil }
        let e = items.removeFirst()
        var resumed: CheckedContinuation<Bool, Never>? = nil
        if !producers.isEmpty {
            let (waiting, c) = producers.removeFirst()
            items.append(waiting)
            resumed = c
        }
        condition.broadcast()
        condition.unlock()
        resumed?.resume(returning: true)
        return e
    }

    /// Wakes both sides; pushes fail from now on, pops drain what is left.
    public func close() { finish(dropping: false) }

    /// Closes and drops pending elements (when the consumer gives up).
    public func cancel() { finish(dropping: true) }

    private func finish(dropping: Bool) {
        condition.lock()
        closed = true
        if dropping { items.removeAll() }
        let waitingConsumers = consumers, waitingProducers = producers
        consumers = []
        producers = []
        condition.broadcast()
        condition.unlock()
        for c in waitingConsumers { c.resume(returning: nil) }
        for (_, c) in waitingProducers { c.resume(returning: false) }
    }
}

/// Runs blocking work (SQLite, files) on a serial queue of its own, off Swift's cooperative
/// threads, in the order it was asked for; the caller suspends until it is done.
public struct BlockingLane: Sendable {
    let queue: DispatchQueue
    public init(_ label: String) { queue = DispatchQueue(label: label) }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws(SluiceError) -> T) async throws(SluiceError) -> T {
        let result: Result<T, SluiceError> = await withCheckedContinuation { cont in
            queue.async { cont.resume(returning: Result { () throws(SluiceError) in try body() }) }
        }
        return try result.get()
    }
}

/// A value set once (later sets are ignored) and awaited by any number of tasks.
public final class OneShot<T: Sendable>: Sendable {
    struct State {
        var value: T?
        var waiters: [CheckedContinuation<T, Never>] = []
    }
    let state = Mutex(State())
    public init() {}

    public func set(_ v: T) {
        let waiters = state.withLock { s -> [CheckedContinuation<T, Never>] in
            guard s.value == nil else { return [] }
            s.value = v
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: v) }
    }

    public func value() async -> T {
        await withCheckedContinuation { c in
            let v = state.withLock { s -> T? in
                if let v = s.value { return v }
                s.waiters.append(c)
                return nil
            }
            if let v { c.resume(returning: v) }
        }
    }
}

/// The plumbing of a sink whose database work runs in one session task (PostgreSQL's COPY,
/// MySQL's LOAD DATA): encoded buffers reach the session through a bounded queue, the commit
/// or rollback as one command, and the session's outcome comes back.
public final class SinkSession<Buffer: Sendable>: Sendable {
    public enum Command: Sendable { case commit(CommitContext), rollback }
    /// Buffers for the session's bulk stream (`next()` until closed).
    public let feed = BoundedQueue<Buffer>(capacity: 4)
    let commands: AsyncStream<Command>
    let commandSink: AsyncStream<Command>.Continuation
    /// Set when the session is ready for rows (nil) or could not start (why).
    public let ready = OneShot<SluiceError?>()
    /// Set when the session ended: the load's counts, or why it failed or rolled back.
    public let finished = OneShot<Result<SinkCounts, SluiceError>>()

    /// Whether rows may still come (false once committed, rolled back or failed).
    let open = Atomic<Bool>(true)

    public init() { (commands, commandSink) = AsyncStream.makeStream(of: Command.self) }

    /// For the session: the owner's command once the rows are in (nil: the sink was dropped).
    public func command() async -> Command? {
        var it = commands.makeAsyncIterator()
        return await it.next()
    }

    /// For the sink: ends the stream, tells the session how to finish, and waits for it.
    public func end(_ command: Command) async -> Result<SinkCounts, SluiceError> {
        open.store(false, ordering: .relaxed)
        feed.close()
        commandSink.yield(command)
        commandSink.finish()
        return await finished.value()
    }

    /// For the session, when it ends: no more rows are taken; `outcome` is the load's.
    public func finish(_ outcome: Result<SinkCounts, SluiceError>) {
        feed.close()
        ready.set(nil)  // no-op when already set
        finished.set(outcome)
    }

    /// A sink dropped without commit or rollback: the session ends its stream and rolls back.
    public func abandon() {
        feed.close()
        commandSink.finish()
    }
}

/// A sink built on a ``SinkSession``: it encodes batches into buffers; writing, committing
/// and rolling back are the same for every such sink.
public protocol SessionSink: LoadSink {
    associatedtype Buffer: Sendable
    var io: SinkSession<Buffer> { get }
    /// The bulk stream's name, for messages (`COPY`, `LOAD DATA`).
    var streamName: String { get }
    /// One batch as a buffer for the session (nil: nothing to send), and the rows refused.
    func encode(_ batch: RecordBatch) -> (Buffer?, [SinkReject])
}

extension SessionSink {
    public func write(_ batch: RecordBatch) async throws(SluiceError) -> [SinkReject] {
        guard io.open.load(ordering: .relaxed) else { throw SluiceError(.aborted, "the load is already finished") }
        if batch.isEmpty { return [] }
        let (buffer, rejects) = encode(batch)
        if let buffer {
            if await io.feed.send(buffer) { return rejects }
            io.open.store(false, ordering: .relaxed)
            if case .failure(let e) = await io.finished.value() { throw e }
            throw SluiceError(.database, "the \(streamName) stream closed unexpectedly")
        }
        return rejects
    }

    public func commit(_ context: CommitContext) async throws(SluiceError) -> SinkCounts {
        guard io.open.load(ordering: .relaxed) else { throw SluiceError(.aborted, "the load is already finished") }
        return try await io.end(.commit(context)).get()
    }

    public func rollback() async {
        guard io.open.load(ordering: .relaxed) else { return }
        _ = await io.end(.rollback)
    }
}
