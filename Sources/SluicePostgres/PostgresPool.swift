public import SluiceCore
public import PostgresNIO
public import Logging
import NIOSSL
public import Foundation
import Synchronization

/// A PostgreSQL database reached by URL (`postgres://user:pass@host:5432/db?sslmode=require`),
/// through postgres-nio's connection pool. The pool must be running (``run()`` or
/// ``with(url:_:)``) while it is used.
public final class PostgresPool: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    /// The URL without its password, for messages.
    public let displayURL: String
    /// One connection's settings but TLS, for ``probe(within:)``, and its TLS.
    let single: PostgresConnection.Configuration
    let singleTLS: (mode: String, config: TLSConfiguration)
    /// `host:port`, for messages.
    let address: String

    /// Whether a configured `database` names PostgreSQL rather than a SQLite file.
    public static func isURL(_ s: String) -> Bool { s.hasPrefix("postgres://") || s.hasPrefix("postgresql://") }

    public init(url: String, maxConnections: Int = 20, logger: Logger = Logger(label: "sluice.postgres")) throws(SluiceError) {
        guard let c = URLComponents(string: url), let host = c.host, !host.isEmpty, let user = c.user, Self.isURL(url) else {
            throw SluiceError(.invalidConfig, "not a PostgreSQL URL (postgres://user[:password]@host[:port]/database)")
        }
        let database = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        let sslmode = c.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        var tlsConfig = TLSConfiguration.makeClientConfiguration()
        switch sslmode {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(tlsConfig)
        case "require":
            tlsConfig.certificateVerification = .none  // libpq's "require": encrypted, not verified
            tls = .require(tlsConfig)
        case "verify-ca", "verify-full": tls = .require(tlsConfig)
        default: throw SluiceError(.invalidConfig, "unknown sslmode '\(sslmode)' (disable, prefer, require, verify-full)")
        }
        singleTLS = (sslmode, tlsConfig)
        let password = c.password?.removingPercentEncoding ?? c.password
        var config = PostgresClient.Configuration(host: host, port: c.port ?? 5432, username: user, password: password,
                                                  database: database.isEmpty ? nil : database, tls: tls)
        var single = PostgresConnection.Configuration(host: host, port: c.port ?? 5432, username: user, password: password,
                                                      database: database.isEmpty ? nil : database, tls: .disable)
        address = "\(host):\(c.port ?? 5432)"
        config.options.maximumConnections = maxConnections
        config.options.connectTimeout = .seconds(10)
        // The server notices within about a minute a client whose host died or whose link was
        // cut, and ends its session (an open COPY and its locks go with it), not after hours.
        config.options.additionalStartupParameters = Self.keepalives
        single.options.additionalStartupParameters = Self.keepalives
        self.single = single
        client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.logger = logger
        var shown = c
        if shown.password != nil { shown.password = "***" }
        displayURL = shown.string ?? "postgres://"
    }

    /// The server's TCP keepalives for each session: 20 s idle, then 4 probes 5 s apart.
    static let keepalives = [("tcp_keepalives_idle", "20"), ("tcp_keepalives_interval", "5"), ("tcp_keepalives_count", "4")]

    /// The sessions' `TimeZone`, asked once per pool (every load of a worker would ask again).
    let timeZone = Mutex<String??>(nil)

    /// The zone the database's sessions read naive timestamps in; nil when it cannot be asked.
    public func sessionTimeZone() async -> String? {
        if let known = timeZone.withLock({ $0 }) { return known }
        let zone = try? await client.withConnection { conn in
            try await conn.query("SHOW TimeZone", logger: self.logger).get().rows.first?.decode(String.self)
        }
        if let zone { timeZone.withLock { $0 = .some(zone) } }
        return zone
    }

    /// Runs the pool until cancelled (PostgresClient is a service).
    public func run() async { await client.run() }

    /// Starts ``run()`` as a child of `group` and returns once it is under way, so the first
    /// lease does not find the pool not yet running (postgres-nio warns about that).
    func start<T: Sendable>(in group: inout ThrowingTaskGroup<T?, any Error>) async {
        let (started, signal) = AsyncStream<Void>.makeStream()
        group.addTask {
            signal.finish()
            await self.run()
            return nil
        }
        for await _ in started {}
        await Task.yield()
    }

    /// Opens and closes one connection, or says in one line why it cannot within `limit`
    /// (the pool would retry for a minute, logging each attempt, before giving up).
    public func probe(within limit: Duration = .seconds(5)) async throws(SluiceError) {
        var config = single
        config.options.connectTimeout = .seconds(Int64(limit.components.seconds))
        let logger = Logger(label: "sluice.postgres.probe")  // quiet: the error below says it all
        do {
            switch singleTLS.mode {
            case "disable": config.tls = .disable
            case "prefer", "allow": config.tls = .prefer(try NIOSSLContext(configuration: singleTLS.config))
            default: config.tls = .require(try NIOSSLContext(configuration: singleTLS.config))
            }
        } catch {
            throw SluiceError(.invalidConfig, "cannot set up TLS for PostgreSQL: \(error)")
        }
        do {
            let conn = try await PostgresConnection.connect(configuration: config, id: 0, logger: logger)
            try? await conn.close()
        } catch {
            throw SluiceError(.unavailable, "cannot connect to PostgreSQL at \(address): \(Self.reason(error))")
        }
    }

    /// Why a connection failed, as a person would say it.
    static func reason(_ error: any Error) -> String {
        if let p = error as? PSQLError, let message = p.serverInfo?[.message] { return message }
        let text = String(reflecting: error)
        if text.contains("Connection refused") { return "connection refused — is it running?" }
        if text.contains("imed out") || text.contains("imeout") { return "no answer (timed out) — is the host reachable?" }
        if text.contains("UnknownHost") || text.contains("DNS") { return "the host name does not resolve" }
        if let p = error as? PSQLError {
            return p.underlying.map { String(describing: $0) } ?? "\(p.code) (is it a PostgreSQL server?)"
        }
        return String(describing: error)
    }

    /// Runs `body` with a database whose pool runs for exactly that long.
    public static func with<T: Sendable>(url: String, maxConnections: Int = 20, _ body: @Sendable (PostgresPool) async throws -> T) async throws -> T {
        let db = try PostgresPool(url: url, maxConnections: maxConnections)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            await db.start(in: &group)
            defer { group.cancelAll() }
            return try await body(db)
        }
    }

    /// A query with binds, for SQL text built from validated identifiers.
    public static func query(_ sql: String, _ binds: [PGValue] = []) -> PostgresQuery {
        var b = PostgresBindings()
        for v in binds {
            switch v {
            case .null: b.appendNull()
            case .int(let x): b.append(x)
            case .double(let x): b.append(x)
            case .bool(let x): b.append(x)
            case .text(let x): b.append(x)
            case .date(let x): b.append(x)
            case .ints(let x): b.append(x)
            case .texts(let x): b.append(x)
            case .dates(let x): b.append(x)
            case .bytes(let x): b.append(ByteBuffer(bytes: x))
            }
        }
        return PostgresQuery(unsafeSQL: sql, binds: b)
    }

    /// Maps a PostgreSQL error to ours: SQLSTATE classes 08 (connection), 40 (rollback),
    /// 53 (resources) and 57 (operator intervention) are transient; the rest are not.
    public static func error(_ e: any Error, _ context: String) -> SluiceError {
        if let e = e as? SluiceError { return e }
        guard let p = e as? PSQLError else { return SluiceError(.unavailable, "\(context): \(e)") }
        let state = p.serverInfo?[.sqlState] ?? ""
        let message = p.serverInfo?[.message] ?? "\(p.code)"
        let transient = ["08", "40", "53", "57", "58"].contains(String(state.prefix(2))) || p.serverInfo == nil
        let code: SluiceError.Code = transient ? .unavailable : (state.hasPrefix("23") ? .constraint : .database)
        return SluiceError(code, "\(context): \(message)\(state.isEmpty ? "" : " (SQLSTATE \(state))")")
    }
}

/// A value bound to a query parameter.
public enum PGValue: Sendable {
    case null
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case text(String)
    case date(Date)
    case ints([Int64])
    case texts([String])
    case dates([Date])
    /// A `bytea`.
    case bytes([UInt8])
}

