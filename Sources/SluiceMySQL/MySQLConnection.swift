public import SluiceCore
public import Foundation
public import NIOCore
import NIOPosix
import NIOSSL
import _CryptoExtras

/// A MySQL or MariaDB server reached by URL:
/// `mysql://user:password@host:3306/database?tls=disable|prefer|require|verify-full[&ca=PEM]`.
/// The password is kept for the handshake only; messages and logs show ``displayURL``.
public struct MySQLConfig: Sendable {
    public enum TLS: String, Sendable { case disable, prefer, require, verifyFull = "verify-full" }
    public var host: String
    public var port: Int
    public var user: String
    var password: String
    public var database: String?
    public var tls: TLS
    /// A PEM file of CA certificates trusted under `verify-full` (else the system's).
    public var caFile: String?
    public var connectTimeout: TimeAmount = .seconds(10)

    public static func isURL(_ s: String) -> Bool { s.hasPrefix("mysql://") || s.hasPrefix("mariadb://") }

    public init(url: String) throws(SluiceError) {
        guard Self.isURL(url), let c = URLComponents(string: url), let host = c.host, !host.isEmpty, let user = c.user else {
            throw SluiceError(.invalidConfig, "not a MySQL URL (mysql://user[:password]@host[:port]/database)")
        }
        self.host = host
        port = c.port ?? 3306
        self.user = user.removingPercentEncoding ?? user
        password = c.password.map { $0.removingPercentEncoding ?? $0 } ?? ""
        let db = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = db.isEmpty ? nil : db
        if let d = database { try SQLIdentifier.validate(d) }
        let mode = c.queryItems?.first { $0.name == "tls" || $0.name == "ssl-mode" }?.value?.lowercased() ?? "prefer"
        guard let tls = TLS(rawValue: mode == "verify_identity" ? "verify-full" : mode) else {
            throw SluiceError(.invalidConfig, "unknown tls mode '\(mode)' (disable, prefer, require, verify-full)")
        }
        self.tls = tls
        caFile = c.queryItems?.first { $0.name == "ca" }?.value
    }

    /// The URL without its password.
    public var displayURL: String { "mysql://\(user)@\(host):\(port)/\(database ?? "")" }
}

/// What a statement returned: rows for a query, the OK packet's figures otherwise.
public struct MySQLResult: Sendable {
    public var columns: [String] = []
    public var rows: [[String?]] = []
    public var ok = MySQLProtocol.OK()
}

/// Passes the socket's bytes to the connection's reader.
final class InboundBridge: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let sink: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
    init(_ sink: AsyncThrowingStream<ByteBuffer, any Error>.Continuation) { self.sink = sink }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { sink.yield(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) {
        sink.finish()
        context.fireChannelInactive()
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        sink.finish(throwing: error)
        context.close(promise: nil)
    }
}

/// One client connection speaking the text protocol: used by one task at a time (a pool
/// lends it out whole). Any I/O or protocol failure marks it broken; it is then closed.
public final class MySQLConnection: @unchecked Sendable {
    let channel: any Channel
    var inbound: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
    var buffer = ByteBuffer()
    var sequence: UInt8 = 0
    public private(set) var broken = false
    /// The largest packet accepted from the server (continuations joined).
    static let maxPacket = 256 << 20
    public private(set) var handshake: MySQLProtocol.Handshake
    var capabilities: MySQLProtocol.Capabilities = []
    let display: String

    init(channel: any Channel, inbound: AsyncThrowingStream<ByteBuffer, any Error>, display: String) {
        self.channel = channel
        self.inbound = inbound.makeAsyncIterator()
        self.display = display
        handshake = MySQLProtocol.Handshake(serverVersion: "", connectionID: 0, capabilities: [], scramble: [], plugin: "")
    }

    /// Connects, upgrades to TLS as the URL asks, authenticates and sets the session up
    /// (UTC, strict SQL mode, utf8mb4).
    public static func connect(_ config: MySQLConfig) async throws(SluiceError) -> MySQLConnection {
        let (stream, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(config.connectTimeout)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(InboundBridge(continuation)) }
                }
                .connect(host: config.host, port: config.port).get()
        } catch {
            throw SluiceError(.unavailable, "cannot connect to MySQL at \(config.host):\(config.port): \(error)")
        }
        let conn = MySQLConnection(channel: channel, inbound: stream, display: config.displayURL)
        do {
            try await conn.authenticate(config)
            for sql in ["SET NAMES utf8mb4 COLLATE utf8mb4_bin", "SET time_zone = '+00:00'",
                        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO'"] {
                _ = try await conn.query(sql)
            }
        } catch {
            conn.close()
            throw MySQLConnection.error(error, "connecting to \(config.displayURL)")
        }
        return conn
    }

    func authenticate(_ config: MySQLConfig) async throws {
        let hs = try MySQLProtocol.handshake(try await readPacket())
        handshake = hs
        let serverTLS = hs.capabilities.contains(.ssl)
        let useTLS: Bool
        switch config.tls {
        case .disable: useTLS = false
        case .prefer: useTLS = serverTLS
        case .require, .verifyFull:
            guard serverTLS else { throw SluiceError(.refused, "the MySQL server at \(config.host):\(config.port) does not offer TLS, and tls=\(config.tls.rawValue) requires it") }
            useTLS = true
        }
        capabilities = MySQLProtocol.clientCapabilities(server: hs.capabilities, database: config.database != nil, tls: useTLS)
        if useTLS {
            try await writePacket(MySQLProtocol.sslRequest(capabilities))
            try await startTLS(config)
        }
        var plugin = hs.plugin
        var scramble = hs.scramble
        // A plugin we do not speak is answered with native; the server then asks to switch.
        if MySQLProtocol.scramble(plugin: plugin, password: "", scramble: []) == nil && plugin != "mysql_native_password" { plugin = "mysql_native_password" }
        let first = MySQLProtocol.scramble(plugin: plugin, password: config.password, scramble: scramble) ?? []
        try await writePacket(MySQLProtocol.handshakeResponse(capabilities, user: config.user, auth: first, database: config.database, plugin: plugin))
        while true {
            let p = try await readPacket()
            switch p.first {
            case 0x00: return
            case 0xFF:
                let e = try MySQLProtocol.serverError(p)
                throw SluiceError(e.code == 1045 ? .refused : .database, "MySQL refused the login: \(e)")
            case 0xFE:
                (plugin, scramble) = try MySQLProtocol.authSwitch(p)
                if plugin == "mysql_clear_password" && !useTLS {
                    throw SluiceError(.refused, "the MySQL server asks for the password in clear text without TLS; refused (use tls=require)")
                }
                guard let data = MySQLProtocol.scramble(plugin: plugin, password: config.password, scramble: scramble) else {
                    throw SluiceError(.unsupported, "the MySQL server asks for authentication plugin '\(plugin)', which Sluice does not speak")
                }
                try await writePacket(data)
            case 0x01 where p.count >= 2 && plugin == "caching_sha2_password":
                if p[1] == 3 { continue }  // fast authentication succeeded; OK follows
                guard p[1] == 4 else { throw MySQLProtocol.malformed("unknown caching_sha2_password state \(p[1])") }
                if useTLS {
                    try await writePacket(Array(config.password.utf8) + [0])
                } else {
                    // Full authentication without TLS: the password under the server's RSA key.
                    try await writePacket([0x02])
                    let key = try await readPacket()
                    guard key.first == 0x01 else { throw MySQLProtocol.malformed("expected the server's public key") }
                    let pem = String(decoding: key.dropFirst(), as: UTF8.self)
                    do {
                        let pub = try _RSA.Encryption.PublicKey(unsafePEMRepresentation: pem)
                        let sealed = try pub.encrypt(MySQLProtocol.xorWithScramble(password: config.password, scramble: scramble), padding: .PKCS1_OAEP)
                        try await writePacket(Array(sealed))
                    } catch {
                        throw SluiceError(.refused, "cannot encrypt the password with the MySQL server's RSA key: \(error)")
                    }
                }
            default:
                throw MySQLProtocol.malformed("unexpected packet 0x\(String(p.first ?? 0, radix: 16)) during authentication")
            }
        }
    }

    func startTLS(_ config: MySQLConfig) async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        if config.tls == .verifyFull {
            if let ca = config.caFile { tls.trustRoots = .file(ca) }
        } else {
            tls.certificateVerification = .none  // require: encrypted, not verified (like libpq's sslmode=require)
        }
        let context = try NIOSSLContext(configuration: tls)
        let isIP = config.host.contains(":") || config.host.allSatisfy { $0.isNumber || $0 == "." }
        let name = isIP ? nil : config.host
        let channel = self.channel
        try await channel.eventLoop.submit {
            let handler = try NIOSSLClientHandler(context: context, serverHostname: name)
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
        }.get()
    }

    // MARK: Packets

    func fail(_ why: String) -> SluiceError {
        broken = true
        return SluiceError(.unavailable, "the connection to MySQL (\(display)) \(why)")
    }

    /// The next packet's payload (continuation packets joined).
    func readPacket() async throws(SluiceError) -> [UInt8] {
        var payload: [UInt8] = []
        while true {
            while buffer.readableBytes < 4 || buffer.readableBytes < 4 + Int(peekLength()) {
                let chunk: ByteBuffer?
                do { chunk = try await inbound.next() } catch { throw fail("failed: \(error)") }
                guard var chunk else { throw fail("closed (the server went away or restarted)") }
                if buffer.readableBytes == 0 { buffer = chunk } else { buffer.writeBuffer(&chunk) }
            }
            let length = Int(peekLength())
            buffer.moveReaderIndex(forwardBy: 3)
            sequence = (buffer.readInteger(as: UInt8.self) ?? 0) &+ 1
            payload += buffer.readBytes(length: length) ?? []
            if buffer.readableBytes == 0 { buffer.clear() }
            if length < MySQLProtocol.maxPayload { return payload }
            // Continuations without end: a server this client never asks for that much.
            if payload.count > Self.maxPacket { throw fail("sent a packet over \(Self.maxPacket >> 20) MiB") }
        }
    }

    func peekLength() -> UInt32 {
        guard let b = buffer.getBytes(at: buffer.readerIndex, length: 3) else { return 0 }
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16
    }

    /// Writes one payload as packets (split at 16 MiB) continuing the sequence.
    func writePacket(_ payload: [UInt8]) async throws(SluiceError) {
        var out = ByteBufferAllocator().buffer(capacity: payload.count + 8)
        var at = 0
        repeat {
            let n = min(MySQLProtocol.maxPayload, payload.count - at)
            header(&out, n)
            out.writeBytes(payload[at..<(at + n)])
            at += n
            if n < MySQLProtocol.maxPayload { break }
        } while true
        try await send(out)
    }

    func header(_ out: inout ByteBuffer, _ n: Int) {
        out.writeInteger(UInt8(truncatingIfNeeded: n))
        out.writeInteger(UInt8(truncatingIfNeeded: n >> 8))
        out.writeInteger(UInt8(truncatingIfNeeded: n >> 16))
        out.writeInteger(sequence)
        sequence &+= 1
    }

    func send(_ buffer: ByteBuffer) async throws(SluiceError) {
        do { try await channel.writeAndFlush(buffer) } catch { throw fail("failed while writing: \(error)") }
    }

    // MARK: Commands

    /// Runs one statement with the text protocol. A server error throws ``MySQLProtocol/ServerError``.
    @discardableResult
    public func query(_ sql: String) async throws -> MySQLResult {
        try await start(sql)
        return try await result(allowLocalFile: false)
    }

    func start(_ sql: String) async throws(SluiceError) {
        guard !broken else { throw fail("is broken") }
        sequence = 0
        try await writePacket([0x03] + Array(sql.utf8))
    }

    func result(allowLocalFile: Bool) async throws -> MySQLResult {
        let first = try await readPacket()
        var result = MySQLResult()
        switch first.first {
        case 0x00:
            result.ok = try MySQLProtocol.ok(first)
        case 0xFF:
            throw try MySQLProtocol.serverError(first)
        case 0xFB:
            // A LOCAL INFILE request we did not ask for: send nothing.
            try await writePacket([])
            _ = try await self.result(allowLocalFile: false)
            throw SluiceError(.refused, "the MySQL server asked for a local file outside LOAD DATA; refused")
        default:
            var r = MySQLProtocol.Reader(first)
            guard let n = try r.lenenc(), n > 0, n < 10_000 else { throw fail("sent a bad column count") }
            for _ in 0..<n { result.columns.append(try MySQLProtocol.columnName(try await readPacket())) }
            if !capabilities.contains(.deprecateEOF) { _ = try await readPacket() }
            while true {
                let p = try await readPacket()
                if p.first == 0xFF { throw try MySQLProtocol.serverError(p) }
                if MySQLProtocol.isEndOfRows(p) { break }
                result.rows.append(try MySQLProtocol.textRow(p, columns: Int(n)))
            }
        }
        return result
    }

    /// Runs `LOAD DATA LOCAL INFILE` statement `sql`, streaming what `next` returns (until
    /// nil) as the file's bytes, in packets of at most `packetBytes` (under the server's
    /// `max_allowed_packet`).
    public func loadLocal(_ sql: String, packetBytes: Int = 1 << 20, next: () async throws -> ByteBuffer?) async throws -> MySQLProtocol.OK {
        try await start(sql)
        let first = try await readPacket()
        switch first.first {
        case 0xFF: throw try MySQLProtocol.serverError(first)
        case 0xFB: break
        default: throw fail("did not ask for the LOCAL INFILE data (is local_infile off on the server?)")
        }
        var failure: (any Error)? = nil
        do {
            while var chunk = try await next() {
                // Packets of at most `packetBytes`, each with its header, sent as one write.
                while chunk.readableBytes > 0 {
                    let n = min(chunk.readableBytes, packetBytes)
                    var out = ByteBufferAllocator().buffer(capacity: n + 4)
                    header(&out, n)
                    var slice = chunk.readSlice(length: n)!
                    out.writeBuffer(&slice)
                    try await send(out)
                }
            }
        } catch {
            failure = error  // the server still needs the end of the data before it answers
        }
        if broken {
            // The server hung up mid-stream: it may have said why first (max_allowed_packet).
            if let last = try? await readPacket(), last.first == 0xFF { throw try MySQLProtocol.serverError(last) }
            throw failure ?? fail("closed during LOAD DATA")
        }
        try await writePacket([])
        let answer = try await readPacket()
        if answer.first == 0xFF { throw try MySQLProtocol.serverError(answer) }
        if let failure { throw failure }
        return try MySQLProtocol.ok(answer)
    }

    public func close() {
        broken = true
        channel.close(promise: nil)
    }

    /// `error` as a SluiceError naming what was being done; server errors keep their code and SQLSTATE.
    public static func error(_ error: any Error, _ doing: String) -> SluiceError {
        if let e = error as? SluiceError { return e }
        if let e = error as? MySQLProtocol.ServerError {
            // Deadlocks, lock waits, too many connections, a server shutting down: worth a retry.
            let transient: Set<UInt16> = [1040, 1053, 1205, 1213, 1927]
            let code: SluiceError.Code = transient.contains(e.code) ? .unavailable : e.sqlState.hasPrefix("23") ? .constraint : .database
            // 1153: a row (or statement) larger than the server's max_allowed_packet.
            let hint = e.code == 1153 ? "; a row is larger than the server's max_allowed_packet: raise it (SET GLOBAL max_allowed_packet)" : ""
            return SluiceError(code, "\(doing): MySQL: \(e)\(hint)")
        }
        return SluiceError(.unavailable, "\(doing): \(error)")
    }
}
