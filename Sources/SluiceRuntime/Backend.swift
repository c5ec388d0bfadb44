public import SluicePostgres
import SluiceCore
public import SluiceQueue
public import Logging
import SluiceSQLite

/// The database a configuration names, resolved once: an embedded SQLite file or a PostgreSQL
/// server. Every command reaches its control plane, targets and export ledger through this,
/// so that the choice is made here and nowhere else.
public enum Backend: Sendable {
    case sqlite(path: String)
    case postgres(PostgresPool)

    /// Runs `body` with the backend of `database` (a `postgres://` URL, else a SQLite path);
    /// a PostgreSQL pool of `maxConnections` runs for exactly that long.
    public static func with<T: Sendable>(database: String, maxConnections: Int, logger: Logger? = nil,
                                         _ body: @Sendable (Backend) async throws -> T) async throws -> T {
        guard PostgresPool.isURL(database) else { return try await body(.sqlite(path: database)) }
        let db = try logger.map { l throws(SluiceError) in try PostgresPool(url: database, maxConnections: maxConnections, logger: l) }
            ?? PostgresPool(url: database, maxConnections: maxConnections)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await db.run(); return nil }
            defer { group.cancelAll() }
            return try await body(.postgres(db))
        }
    }

    /// The export ledger in this database.
    public func exportStore() async throws -> any ExportStore {
        switch self {
        case .sqlite(let path): try SQLiteExportStore(path: path)
        case .postgres(let pool): try await PostgresExportStore(pool: pool)
        }
    }
}
