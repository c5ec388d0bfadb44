import Testing
import Foundation
@testable import SluiceMySQL
import SluiceCore

/// The MariaDB server started by scripts/test.sh (SLUICE_TEST_MYSQL_URL). Tests never skip
/// when it is missing: they fail, so CI cannot pass without a real server.
enum MY {
    struct Missing: Error, CustomStringConvertible {
        var description: String { "SLUICE_TEST_MYSQL_URL is not set: run the tests with scripts/test.sh (it starts MariaDB 10.11)" }
    }

    static var adminURL: String {
        get throws {
            guard let u = ProcessInfo.processInfo.environment["SLUICE_TEST_MYSQL_URL"], !u.isEmpty else { throw Missing() }
            return u
        }
    }

    /// `adminURL` with its query string replaced (e.g. `tls=disable`) or its password changed.
    static func url(password: String? = nil, database: String? = nil, query: String? = nil) throws -> String {
        var c = URLComponents(string: try adminURL)!
        if let password { c.password = password }
        if let database { c.path = "/" + database }
        if let query { c.query = query }
        return c.string!
    }

    /// Creates an empty database for one test and returns a pool on it.
    static func freshPool(maxConnections: Int = 8) async throws -> MySQLPool {
        let name = "sluice_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = try MySQLPool(url: try adminURL, maxConnections: 1)
        try await admin.withConnection { c in _ = try await c.query("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin") }
        admin.shutdown()
        return try MySQLPool(url: try url(database: name), maxConnections: maxConnections)
    }

    static func rows(_ pool: MySQLPool, _ sql: String) async throws -> [[String?]] {
        try await pool.withConnection { c in try await c.query(sql).rows }
    }
}
