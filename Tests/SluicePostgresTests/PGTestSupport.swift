import Testing
import Foundation
@testable import SluicePostgres
import SluiceLoad
import PostgresNIO

/// The test cluster started by scripts/test.sh (SLUICE_TEST_POSTGRES_URL). Tests never skip
/// when it is missing: they fail, so CI cannot pass without a real PostgreSQL.
enum PG {
    struct Missing: Error, CustomStringConvertible {
        var description: String { "SLUICE_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh (it starts PostgreSQL 15)" }
    }

    static var adminURL: String {
        get throws {
            guard let u = ProcessInfo.processInfo.environment["SLUICE_TEST_POSTGRES_URL"], !u.isEmpty else { throw Missing() }
            return u
        }
    }

    /// Creates an empty database for one test and returns its URL.
    static func freshDatabase() async throws -> String {
        let admin = try adminURL
        let name = "sluice_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await PostgresPool.with(url: admin, maxConnections: 1) { db in
            try await db.client.withConnection { conn in try await db.exec("CREATE DATABASE \(name)", on: conn) }
        }
        var c = URLComponents(string: admin)!
        c.path = "/" + name
        return c.string!
    }

    /// A pool on a fresh database, running for the rest of the test process.
    static func freshPool() async throws -> PostgresPool {
        let db = try PostgresPool(url: try await freshDatabase(), maxConnections: 10)
        Task { await db.run() }
        return db
    }

    /// Runs `body` with a fresh database whose pool runs meanwhile.
    static func withDatabase<T: Sendable>(_ body: @Sendable (PostgresPool, String) async throws -> T) async throws -> T {
        let url = try await freshDatabase()
        return try await PostgresPool.with(url: url) { db in try await body(db, url) }
    }

    /// Runs a query and returns its rows; the query must select text (cast with `::text`).
    static func rows(_ db: PostgresPool, _ sql: String) async throws -> [[String?]] {
        try await db.client.withConnection { conn in
            try await conn.query(PostgresPool.query(sql), logger: db.logger).get().rows.map { row in
                try row.makeRandomAccess().map { try $0.decode(String?.self) }
            }
        }
    }

    static func exec(_ db: PostgresPool, _ sql: String) async throws {
        try await db.client.withConnection { conn in _ = try await db.exec(sql, on: conn) }
    }
}

