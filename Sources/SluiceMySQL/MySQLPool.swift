public import SluiceCore
import Synchronization

/// A small pool of connections to one server: at most `maxConnections` open, idle ones
/// reused, a connection whose borrower failed closed rather than returned (its session
/// state is unknown).
public final class MySQLPool: Sendable {
    public let config: MySQLConfig
    let maxConnections: Int
    struct State {
        var idle: [MySQLConnection] = []
        var open = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }
    let state = Mutex(State())

    public init(config: MySQLConfig, maxConnections: Int = 8) {
        self.config = config
        self.maxConnections = max(1, maxConnections)
    }

    public convenience init(url: String, maxConnections: Int = 8) throws(SluiceError) {
        self.init(config: try MySQLConfig(url: url), maxConnections: maxConnections)
    }

    public var displayURL: String { config.displayURL }

    /// Runs `body` with a connection of its own.
    public func withConnection<T>(_ body: (MySQLConnection) async throws -> T) async throws -> T {
        let conn = try await borrow()
        do {
            let value = try await body(conn)
            giveBack(conn, reuse: !conn.broken)
            return value
        } catch {
            giveBack(conn, reuse: false)
            throw error
        }
    }

    func borrow() async throws(SluiceError) -> MySQLConnection {
        while true {
            enum Next { case reuse(MySQLConnection), connect, wait }
            let next: Next = state.withLock { s in
                if let c = s.idle.popLast() { return .reuse(c) }
                if s.open < maxConnections { s.open += 1; return .connect }
                return .wait
            }
            switch next {
            case .reuse(let c): return c
            case .connect:
                do { return try await MySQLConnection.connect(config) } catch {
                    release()
                    throw error
                }
            case .wait:
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s in
                        if !s.idle.isEmpty || s.open < maxConnections { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
        }
    }

    func giveBack(_ conn: MySQLConnection, reuse: Bool) {
        let keep = state.withLock { s in
            if reuse && !s.closed { s.idle.append(conn) } else { s.open -= 1 }
            return reuse && !s.closed
        }
        if !keep { conn.close() }
        wakeOne()
    }

    func release() {
        state.withLock { $0.open -= 1 }
        wakeOne()
    }

    func wakeOne() {
        state.withLock { s in s.waiters.isEmpty ? nil : s.waiters.removeFirst() }?.resume()
    }

    /// Closes the idle connections; borrowed ones close when given back.
    public func shutdown() {
        let idle = state.withLock { s in
            s.closed = true
            let idle = s.idle
            s.idle = []
            s.open -= idle.count
            return idle
        }
        for c in idle { c.close() }
    }
}
