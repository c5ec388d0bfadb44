public import SluiceCore
import Crypto

/// The MySQL / MariaDB client/server protocol as pure functions over packet payloads: the
/// handshake, the client's answer, authentication scrambles, OK / ERR / EOF packets and text
/// result rows. Every read is bounds-checked, so a hostile server's bytes throw, never trap.
public enum MySQLProtocol {
    /// Capability flags the client may set (the protocol's `CLIENT_*`).
    public struct Capabilities: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let longPassword = Self(rawValue: 1)
        public static let foundRows = Self(rawValue: 1 << 1)
        public static let longFlag = Self(rawValue: 1 << 2)
        public static let connectWithDB = Self(rawValue: 1 << 3)
        public static let localFiles = Self(rawValue: 1 << 7)
        public static let protocol41 = Self(rawValue: 1 << 9)
        public static let ssl = Self(rawValue: 1 << 11)
        public static let transactions = Self(rawValue: 1 << 13)
        public static let secureConnection = Self(rawValue: 1 << 15)
        public static let multiResults = Self(rawValue: 1 << 17)
        public static let pluginAuth = Self(rawValue: 1 << 19)
        public static let pluginAuthLenencData = Self(rawValue: 1 << 21)
        public static let deprecateEOF = Self(rawValue: 1 << 24)
    }

    /// The largest payload of one packet; a longer one continues in the next packet.
    public static let maxPayload = 0xFF_FFFF
    /// utf8mb4_general_ci, the connection character set the client asks for.
    public static let utf8mb4: UInt8 = 45

    /// The server's first packet (Handshake v10).
    public struct Handshake: Sendable, Equatable {
        public var serverVersion: String
        public var connectionID: UInt32
        public var capabilities: Capabilities
        public var scramble: [UInt8]
        public var plugin: String
        public var isMariaDB: Bool { serverVersion.contains("MariaDB") }
    }

    /// An error packet: the server's code, SQLSTATE and message.
    public struct ServerError: Error, Sendable, Equatable, CustomStringConvertible {
        public var code: UInt16
        public var sqlState: String
        public var message: String
        public var description: String { "\(message) (error \(code), SQLSTATE \(sqlState))" }
    }

    /// An OK packet (or the EOF packet ending a result set under `deprecateEOF`).
    public struct OK: Sendable, Equatable {
        public var affectedRows: UInt64 = 0
        public var lastInsertID: UInt64 = 0
        public var status: UInt16 = 0
        public var warnings: UInt16 = 0
        public var info: String = ""
    }

    static func malformed(_ what: String) -> SluiceError {
        SluiceError(.database, "malformed packet from the MySQL server: \(what)")
    }

    /// Reads one payload front to back; every read checks what is left.
    public struct Reader {
        let bytes: [UInt8]
        var at = 0
        public init(_ bytes: [UInt8]) { self.bytes = bytes }
        public var remaining: Int { bytes.count - at }
        public var isEmpty: Bool { at >= bytes.count }

        public mutating func u8() throws(SluiceError) -> UInt8 {
            guard at < bytes.count else { throw malformed("ends early") }
            defer { at += 1 }
            return bytes[at]
        }

        /// A little-endian unsigned integer of `n` ≤ 8 bytes.
        public mutating func int(_ n: Int) throws(SluiceError) -> UInt64 {
            guard n >= 0, n <= 8, remaining >= n else { throw malformed("ends early") }
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += n
            return v
        }

        public mutating func take(_ n: Int) throws(SluiceError) -> ArraySlice<UInt8> {
            guard n >= 0, remaining >= n else { throw malformed("a field of \(n) bytes runs past the packet") }
            defer { at += n }
            return bytes[at..<(at + n)]
        }

        public mutating func rest() -> ArraySlice<UInt8> {
            defer { at = bytes.count }
            return bytes[min(at, bytes.count)...]
        }

        /// A length-encoded integer; nil for 0xFB (NULL in a text row).
        public mutating func lenenc() throws(SluiceError) -> UInt64? {
            let first = try u8()
            switch first {
            case 0..<0xFB: return UInt64(first)
            case 0xFB: return nil
            case 0xFC: return try int(2)
            case 0xFD: return try int(3)
            case 0xFE: return try int(8)
            default: throw malformed("0xFF is not a length")
            }
        }

        /// A length-encoded string; nil for NULL.
        public mutating func lenencBytes() throws(SluiceError) -> ArraySlice<UInt8>? {
            guard let n = try lenenc() else { return nil }
            guard n <= UInt64(remaining) else { throw malformed("a string of \(n) bytes runs past the packet") }
            return try take(Int(n))
        }

        /// Bytes up to (not including) the next NUL, which is consumed; the rest if none.
        public mutating func nulTerminated() -> ArraySlice<UInt8> {
            let start = min(at, bytes.count)
            var end = start
            while end < bytes.count && bytes[end] != 0 { end += 1 }
            at = min(end + 1, bytes.count)
            return bytes[start..<end]
        }
    }

    static func text(_ b: ArraySlice<UInt8>) -> String { String(decoding: b, as: UTF8.self) }

    /// Parses the server's greeting; an ERR packet (too many connections, host blocked) throws it.
    public static func handshake(_ payload: [UInt8]) throws -> Handshake {
        if payload.first == 0xFF { throw try serverError(payload) }
        var r = Reader(payload)
        let version = try r.u8()
        guard version == 10 else { throw malformed("handshake protocol \(version), expected 10") }
        let serverVersion = text(r.nulTerminated())
        let id = UInt32(truncatingIfNeeded: try r.int(4))
        var scramble = Array(try r.take(8))
        _ = try r.u8()
        var caps = UInt32(truncatingIfNeeded: try r.int(2))
        var plugin = "mysql_native_password"
        if !r.isEmpty {
            _ = try r.u8()  // character set
            _ = try r.int(2)  // status flags
            caps |= UInt32(truncatingIfNeeded: try r.int(2)) << 16
            let authLength = Int(try r.u8())
            _ = try r.take(10)  // reserved (MariaDB's extended capabilities live here)
            if caps & Capabilities.secureConnection.rawValue != 0 {
                let n = max(13, authLength - 8)
                var part = Array(try r.take(min(n, r.remaining)))
                if part.last == 0 { part.removeLast() }
                scramble += part
            }
            if caps & Capabilities.pluginAuth.rawValue != 0 { plugin = text(r.nulTerminated()) }
        }
        return Handshake(serverVersion: serverVersion, connectionID: id, capabilities: Capabilities(rawValue: caps),
                         scramble: scramble, plugin: plugin)
    }

    /// The capabilities this client asks for, given what the server offers.
    public static func clientCapabilities(server: Capabilities, database: Bool, tls: Bool) -> Capabilities {
        var c: Capabilities = [.longPassword, .longFlag, .localFiles, .protocol41, .transactions, .secureConnection,
                               .multiResults, .pluginAuth, .pluginAuthLenencData, .deprecateEOF]
        if database { c.insert(.connectWithDB) }
        if tls { c.insert(.ssl) }
        return c.intersection(server.union(.ssl))
    }

    /// The first 32 bytes of the client's answer: also the whole SSLRequest packet.
    public static func sslRequest(_ caps: Capabilities) -> [UInt8] {
        var out: [UInt8] = []
        append(&out, UInt64(caps.rawValue), 4)
        append(&out, UInt64(1 << 24), 4)  // max packet size we accept: 16 MiB
        out.append(utf8mb4)
        out += [UInt8](repeating: 0, count: 23)
        return out
    }

    /// HandshakeResponse41.
    public static func handshakeResponse(_ caps: Capabilities, user: String, auth: [UInt8], database: String?, plugin: String) -> [UInt8] {
        var out = sslRequest(caps)
        out += Array(user.utf8) + [0]
        if caps.contains(.pluginAuthLenencData) {
            appendLenenc(&out, UInt64(auth.count))
            out += auth
        } else {
            out.append(UInt8(min(auth.count, 255)))
            out += auth.prefix(255)
        }
        if caps.contains(.connectWithDB), let database { out += Array(database.utf8) + [0] }
        if caps.contains(.pluginAuth) { out += Array(plugin.utf8) + [0] }
        return out
    }

    /// The auth data `plugin` sends for `password` against the server's `scramble`
    /// (empty for an empty password); nil for a plugin this client does not speak.
    public static func scramble(plugin: String, password: String, scramble: [UInt8]) -> [UInt8]? {
        let pw = Array(password.utf8)
        switch plugin {
        case "mysql_native_password":
            if pw.isEmpty { return [] }
            // SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))
            let h1 = Array(Insecure.SHA1.hash(data: pw))
            let h2 = Array(Insecure.SHA1.hash(data: h1))
            let h3 = Array(Insecure.SHA1.hash(data: Array(scramble.prefix(20)) + h2))
            return zip(h1, h3).map { $0 ^ $1 }
        case "caching_sha2_password":
            if pw.isEmpty { return [] }
            // SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble)
            let h1 = Array(SHA256.hash(data: pw))
            let h2 = Array(SHA256.hash(data: h1))
            let h3 = Array(SHA256.hash(data: h2 + Array(scramble.prefix(20))))
            return zip(h1, h3).map { $0 ^ $1 }
        case "mysql_clear_password":
            return pw + [0]
        default:
            return nil
        }
    }

    /// The password as caching_sha2_password's full authentication sends it under RSA:
    /// NUL-terminated and XORed with the scramble, repeated.
    public static func xorWithScramble(password: String, scramble: [UInt8]) -> [UInt8] {
        let pw = Array(password.utf8) + [0]
        let s = Array(scramble.prefix(20))
        guard !s.isEmpty else { return pw }
        return pw.enumerated().map { $0.element ^ s[$0.offset % s.count] }
    }

    /// An auth-switch request (0xFE): the plugin to use and its new scramble.
    public static func authSwitch(_ payload: [UInt8]) throws(SluiceError) -> (plugin: String, scramble: [UInt8]) {
        var r = Reader(payload)
        guard try r.u8() == 0xFE else { throw malformed("not an auth switch request") }
        let plugin = text(r.nulTerminated())
        var data = Array(r.rest())
        if data.last == 0 { data.removeLast() }
        return (plugin, data)
    }

    public static func serverError(_ payload: [UInt8]) throws(SluiceError) -> ServerError {
        var r = Reader(payload)
        guard try r.u8() == 0xFF else { throw malformed("not an error packet") }
        let code = UInt16(truncatingIfNeeded: try r.int(2))
        var state = "HY000"
        if r.remaining >= 6, payload[r.at] == UInt8(ascii: "#") {
            _ = try r.u8()
            state = text(try r.take(5))
        }
        return ServerError(code: code, sqlState: state, message: text(r.rest()))
    }

    /// An OK packet (header 0x00, or 0xFE ending a result set).
    public static func ok(_ payload: [UInt8]) throws(SluiceError) -> OK {
        var r = Reader(payload)
        let header = try r.u8()
        guard header == 0x00 || header == 0xFE else { throw malformed("not an OK packet (0x\(String(header, radix: 16)))") }
        var ok = OK()
        ok.affectedRows = try r.lenenc() ?? 0
        ok.lastInsertID = try r.lenenc() ?? 0
        if r.remaining >= 4 {
            ok.status = UInt16(truncatingIfNeeded: try r.int(2))
            ok.warnings = UInt16(truncatingIfNeeded: try r.int(2))
        }
        ok.info = text(r.rest())
        return ok
    }

    /// Whether a packet in a result set's row position ends it (EOF, or OK with header 0xFE):
    /// a row starting with 0xFE holds a value of 2^24 bytes or more, so it is longer.
    public static func isEndOfRows(_ payload: [UInt8]) -> Bool { payload.first == 0xFE && payload.count < maxPayload }

    /// A column definition's name.
    public static func columnName(_ payload: [UInt8]) throws(SluiceError) -> String {
        var r = Reader(payload)
        for _ in 0..<4 { _ = try r.lenencBytes() }  // catalog, schema, table, original table
        return text(try r.lenencBytes() ?? [])
    }

    /// A text-protocol row of `columns` values (nil = NULL).
    public static func textRow(_ payload: [UInt8], columns: Int) throws(SluiceError) -> [String?] {
        var r = Reader(payload)
        var row: [String?] = []
        row.reserveCapacity(columns)
        for _ in 0..<columns { row.append(try r.lenencBytes().map(text)) }
        return row
    }

    static func append(_ out: inout [UInt8], _ v: UInt64, _ n: Int) {
        for i in 0..<n { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    static func appendLenenc(_ out: inout [UInt8], _ v: UInt64) {
        switch v {
        case 0..<251: out.append(UInt8(v))
        case 251..<(1 << 16): out.append(0xFC); append(&out, v, 2)
        case (1 << 16)..<(1 << 24): out.append(0xFD); append(&out, v, 3)
        default: out.append(0xFE); append(&out, v, 8)
        }
    }
}
