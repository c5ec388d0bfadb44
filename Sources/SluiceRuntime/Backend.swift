import SluicePostgres
import SluiceMySQL
public import SluiceCore
public import SluiceQueue
public import Logging
import SluiceSQLite

/// The backends Sluice knows, by the form of the database setting: the one place that tells
/// them apart. A new backend adds one line to ``with(database:maxConnections:logger:_:)``
/// (see ARCHITECTURE.md).
public enum Backends {
    /// Runs `body` with the backend of `database` (a `postgres://` or `mysql://` URL, else a
    /// SQLite path); a server's connection pool of `maxConnections` runs for exactly that long.
    /// `tableSchema`: where PostgreSQL tables named without a schema are (`target_schema`).
    public static func with<T: Sendable>(database: String, maxConnections: Int, logger: Logger? = nil, tableSchema: String? = nil,
                                         _ body: @Sendable (any Backend) async throws -> T) async throws -> T {
        if PostgresPool.isURL(database) {
            return try await PostgresBackend.with(url: database, maxConnections: maxConnections, logger: logger, tableSchema: tableSchema) { try await body($0) }
        }
        if MySQLBackend.isURL(database) {
            return try await MySQLBackend.with(url: database, maxConnections: maxConnections) { try await body($0) }
        }
        return try await body(SQLiteBackend(path: database))
    }

    /// Runs `body` with the control plane of `control` and the tables of `target`: one
    /// backend when they are the same database, else the two joined (``SplitBackend``).
    public static func with<T: Sendable>(control: String, target: String, maxConnections: Int, logger: Logger? = nil, tableSchema: String? = nil,
                                         _ body: @Sendable (any Backend) async throws -> T) async throws -> T {
        if control == target { return try await with(database: control, maxConnections: maxConnections, logger: logger, tableSchema: tableSchema, body) }
        return try await with(database: control, maxConnections: maxConnections, logger: logger) { c in
            try await with(database: target, maxConnections: maxConnections, logger: logger, tableSchema: tableSchema) { t in
                try await body(try SplitBackend(control: c, tables: t))
            }
        }
    }

    /// Why the PostgreSQL databases among `databases` cannot be reached (one line each), or
    /// nil when they can (SQLite files and MySQL are opened when used).
    public static func unreachable(_ databases: [String]) async -> String? {
        for db in Set(databases) where PostgresPool.isURL(db) {
            do {
                try await PostgresPool(url: db, maxConnections: 1).probe()
            } catch {
                return error.message
            }
        }
        return nil
    }

    /// The export ledger of `backend`, or why it cannot hold one.
    public static func exportStore(_ backend: any Backend) async throws -> any ExportStore {
        guard let store = try await backend.exportStore() else {
            throw SluiceError(.invalidConfig, "\(backend.displayName) holds tables only: exports read tables on SQLite or PostgreSQL")
        }
        return store
    }
}

/// A control plane in one database and the tables in another (`control:` and `target:`):
/// workers' loads are fenced by receipts in the target (``ReceiptFencedTarget``).
struct SplitBackend: Backend {
    let control: any Backend
    let tables: any Backend
    let driver: any QueueDriver
    let target: any DataTarget

    init(control: any Backend, tables: any Backend) throws(SluiceError) {
        guard let driver = try control.controlPlane() else {
            throw SluiceError(.invalidConfig, "\(control.displayName) holds tables only: keep the control plane on SQLite or PostgreSQL")
        }
        guard let receipts = tables.target as? any ReceiptTarget else {
            throw SluiceError(.invalidConfig, "\(tables.displayName) keeps its own control plane: set `database:` to it alone, or use it as `control:` too")
        }
        self.control = control
        self.tables = tables
        self.driver = driver
        target = ReceiptFencedTarget(target: receipts, driver: driver)
    }

    func controlPlane() throws(SluiceError) -> (any QueueDriver)? { driver }
    func exportStore() async throws -> (any ExportStore)? { try await tables.exportStore() }
    var wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)? { control.wakeSource }
    var displayName: String { "control plane on \(control.displayName), tables on \(tables.displayName)" }
}
