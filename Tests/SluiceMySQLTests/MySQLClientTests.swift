import Testing
import Foundation
import NIOCore
@testable import SluiceMySQL
import SluiceCore
import SluiceTesting

@Suite("MySQL client against MariaDB")
struct MySQLClientTests {
    @Test func connectsQueriesAndReadsNullsAndUnicode() async throws {
        let pool = try MySQLPool(url: try MY.url(query: "tls=disable"))
        let r = try await pool.withConnection { c in try await c.query("SELECT 1 AS one, NULL AS nothing, 'ação' AS word, @@time_zone") }
        #expect(r.columns == ["one", "nothing", "word", "@@time_zone"])
        #expect(r.rows == [["1", nil, "ação", "+00:00"]])
        pool.shutdown()
    }

    @Test func serverErrorsCarryCodeAndSQLState() async throws {
        let pool = try MySQLPool(url: try MY.url())
        await #expect(throws: MySQLProtocol.ServerError.self) {
            try await pool.withConnection { c in try await c.query("SELECT * FROM no_such_table_here") }
        }
        do {
            try await pool.withConnection { c in try await c.query("SELEC 1") }
        } catch let e as MySQLProtocol.ServerError {
            #expect(e.code == 1064 && e.sqlState == "42000", "\(e)")
        }
        // The pool still works after failures (the broken borrower's connection was dropped).
        let ok = try await MY.rows(pool, "SELECT 2")
        #expect(ok == [["2"]])
        pool.shutdown()
    }

    @Test func wrongPasswordIsRefusedWithoutShowingIt() async throws {
        let secret = "not-the-password-\(UUID().uuidString.prefix(6))"
        let config = try MySQLConfig(url: try MY.url(password: secret))
        do throws(SluiceError) {
            _ = try await MySQLConnection.connect(config)
            Issue.record("logged in with a wrong password")
        } catch {
            #expect(error.code == .refused, "\(error)")
            #expect(!error.description.contains(secret), "\(error)")
            #expect(error.description.contains("Access denied"), "\(error)")
        }
    }

    @Test func tlsRequireEncryptsTheSession() async throws {
        let conn = try await MySQLConnection.connect(try MySQLConfig(url: try MY.url(query: "tls=require")))
        let r = try await conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        #expect(r.rows.first?[1]?.isEmpty == false, "\(r.rows)")
        conn.close()
    }

    @Test func loadDataLocalStreamsChunksInOneStatement() async throws {
        let pool = try await MY.freshPool()
        let n = 50_000
        let ok = try await pool.withConnection { c in
            try await c.query("CREATE TEMPORARY TABLE t (id BIGINT, name LONGTEXT)")
            var sent = 0
            let result = try await c.loadLocal("LOAD DATA LOCAL INFILE 'sluice' INTO TABLE t CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (id, name)") {
                guard sent < n else { return nil }
                var b = ByteBufferAllocator().buffer(capacity: 1 << 16)
                let end = min(n, sent + 7_000)
                for i in sent..<end { b.writeString(i % 10 == 0 ? "\(i)\t\\N\n" : "\(i)\tname\\t\(i)\n") }
                sent = end
                return b
            }
            let rows = try await c.query("SELECT count(*), count(name), max(id), (SELECT name FROM t WHERE id = 1) FROM t").rows
            return (result, rows)
        }
        #expect(ok.0.affectedRows == UInt64(n))
        #expect(ok.1 == [[String(n), String(n - n / 10), String(n - 1), "name\t1"]])
        pool.shutdown()
    }

    /// A hostile server's packets: every decoder throws or returns, never traps.
    @Test func packetDecodersSurviveRandomBytes() {
        var rng = SplitMix(seed: 23)
        let seeds: [[UInt8]] = [
            [10] + Array("5.5.5-10.11.19-MariaDB\0".utf8) + [1, 0, 0, 0] + Array(repeating: 65, count: 8) + [0, 0xFF, 0xF7, 45, 2, 0, 0xFF, 0x81, 21] + Array(repeating: 0, count: 10) + Array(repeating: 66, count: 13) + Array("mysql_native_password\0".utf8),
            [0x00, 0xFC, 0x10, 0x27, 0x05, 0x02, 0x00, 0x00, 0x00],
            [0xFF, 0x15, 0x04, UInt8(ascii: "#")] + Array("28000Access denied".utf8),
            [0x03] + Array("def".utf8) + [0xFB, 0xFC, 0x01],
        ]
        for _ in 0..<20_000 {
            var p = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(p.count + 1))
                switch rng.next() % 3 {
                case 0 where i < p.count: p[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: p.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
                default: p = Array(p.prefix(i))
                }
            }
            _ = try? MySQLProtocol.handshake(p)
            _ = try? MySQLProtocol.ok(p)
            _ = try? MySQLProtocol.serverError(p)
            _ = try? MySQLProtocol.authSwitch(p)
            _ = try? MySQLProtocol.columnName(p)
            _ = try? MySQLProtocol.textRow(p, columns: 3)
            _ = MySQLProtocol.isEndOfRows(p)
        }
    }
}

@Suite("MySQL TLS")
struct MySQLTLSTests {
    @Test func verifyFullChecksTheCertificate() async throws {
        // Without the CA the self-signed certificate is refused...
        let bare = try MySQLConfig(url: try MY.url(query: "tls=verify-full"))
        await #expect(throws: SluiceError.self) { _ = try await MySQLConnection.connect(bare) }
        // ...and with it the session is verified and encrypted.
        let ca = ProcessInfo.processInfo.environment["SLUICE_TEST_MYSQL_DIR"].map { $0 + "/cert.pem" } ?? ""
        let conn = try await MySQLConnection.connect(try MySQLConfig(url: try MY.url(query: "tls=verify-full&ca=\(ca)")))
        let r = try await conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        #expect(r.rows.first?[1]?.isEmpty == false, "\(r.rows)")
        conn.close()
    }
}

/// scripts/receivers/fake_mysql.py: what MariaDB cannot show (MySQL 8's caching_sha2_password,
/// checked by Python's `cryptography`), a server without TLS, a hostile server.
final class FakeMySQL: @unchecked Sendable {
    let process = Process()
    let port = Int.random(in: 30_000..<45_000)

    init(mode: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", root.path + "/scripts/receivers/fake_mysql.py", "--port", String(port), "--mode", mode]
        // Never the test runner's own output: a server outliving the test would hold it open.
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        _ = out.fileHandleForReading.availableData  // "ready"
    }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func url(password: String = "s3cret-pw", tls: String = "prefer") -> String { "mysql://app:\(password)@127.0.0.1:\(port)/db?tls=\(tls)" }
}

@Suite("MySQL authentication against a scripted server")
struct MySQLAuthTests {
    @Test func cachingSha2FastPath() async throws {
        let server = try FakeMySQL(mode: "sha2-fast")
        defer { server.stop() }
        let conn = try await MySQLConnection.connect(try MySQLConfig(url: server.url()))
        #expect(conn.handshake.plugin == "caching_sha2_password")
        conn.close()
        await #expect(throws: SluiceError.self) { _ = try await MySQLConnection.connect(try MySQLConfig(url: server.url(password: "wrong"))) }
    }

    /// Full authentication without TLS: the password sealed with the server's RSA key (OAEP),
    /// which the server opens and checks.
    @Test func cachingSha2FullAuthenticationWithTheServersKey() async throws {
        let server = try FakeMySQL(mode: "sha2-full")
        defer { server.stop() }
        let conn = try await MySQLConnection.connect(try MySQLConfig(url: server.url()))
        conn.close()
    }

    @Test func tlsRequiredButNotOfferedIsRefusedBeforeThePasswordLeaves() async throws {
        let server = try FakeMySQL(mode: "no-tls")
        defer { server.stop() }
        do throws(SluiceError) {
            _ = try await MySQLConnection.connect(try MySQLConfig(url: server.url(tls: "require")))
            Issue.record("connected without TLS")
        } catch {
            #expect(error.code == .refused && error.message.contains("does not offer TLS"), "\(error)")
        }
    }

    @Test func aHostileServerGetsAnErrorNotACrash() async throws {
        let server = try FakeMySQL(mode: "garbage")
        defer { server.stop() }
        for _ in 0..<5 {
            await #expect(throws: SluiceError.self) { _ = try await MySQLConnection.connect(try MySQLConfig(url: server.url())) }
        }
    }
}
