public import SluiceCore

/// A bounds-checked cursor over Avro binary data (zig-zag varints, IEEE floats,
/// length-prefixed bytes). Every length is checked against the bytes left.
struct AvroCursor {
    let base: UnsafeRawPointer
    let count: Int
    var pos = 0

    init(_ b: UnsafeRawBufferPointer) {
        base = b.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        count = b.count
    }

    var remaining: Int { count - pos }

    static func fail(_ m: String) -> SluiceError { SluiceError(.malformedFile, m) }

    @inline(__always) mutating func long() throws(SluiceError) -> Int64 {
        var shift: UInt64 = 0
        var u: UInt64 = 0
        while true {
            guard pos < count else { throw Self.fail("data ends inside a number") }
            let b = base.load(fromByteOffset: pos, as: UInt8.self)
            pos += 1
            u |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
            guard shift < 64 else { throw Self.fail("a number is longer than 10 bytes") }
        }
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    @inline(__always) mutating func int() throws(SluiceError) -> Int64 {
        let v = try long()
        guard v >= Int64(Int32.min) && v <= Int64(Int32.max) else { throw Self.fail("int value \(v) is out of range") }
        return v
    }

    /// A non-negative length that fits in what is left.
    @inline(__always) mutating func length() throws(SluiceError) -> Int {
        let n = try long()
        guard n >= 0, n <= Int64(count - pos) else { throw Self.fail("a length of \(n) bytes runs past the data (\(count - pos) left)") }
        return Int(n)
    }

    @inline(__always) mutating func take(_ n: Int) throws(SluiceError) -> UnsafeRawBufferPointer {
        guard n <= count - pos else { throw Self.fail("data ends inside a value") }
        defer { pos += n }
        return UnsafeRawBufferPointer(start: base + pos, count: n)
    }

    @inline(__always) mutating func bytes() throws(SluiceError) -> UnsafeRawBufferPointer { try take(try length()) }

    mutating func boolean() throws(SluiceError) -> Bool {
        let b = try take(1)[0]
        guard b <= 1 else { throw Self.fail("boolean byte \(b)") }
        return b == 1
    }

    mutating func float() throws(SluiceError) -> Double { Double(Float(bitPattern: try take(4).loadUnaligned(as: UInt32.self).littleEndian)) }
    mutating func double() throws(SluiceError) -> Double { Double(bitPattern: try take(8).loadUnaligned(as: UInt64.self).littleEndian) }

    /// Items in the next block of an array or map (0 ends it); a negative count is followed
    /// by the block's byte size. Counts are bounded by the bytes left (items of size zero
    /// get some slack), so a hostile count cannot spin.
    mutating func blockCount() throws(SluiceError) -> Int {
        var n = try long()
        if n < 0 {
            guard n != Int64.min else { throw Self.fail("block count out of range") }
            n = -n
            _ = try length()
        }
        guard n <= Int64(count - pos) + 16 else { throw Self.fail("a block claims \(n) items in \(count - pos) bytes") }
        return Int(n)
    }
}

/// Reads an Avro object container file from a byte stream: the header (schema, codec,
/// sync marker), then one block at a time, decompressed and checked against its marker.
public final class AvroReader {
    public enum Codec: String, Sendable { case null, deflate, snappy, zstandard }

    var source: any ByteChunkReader
    let window: ByteWindow
    public let schema: AvroSchema
    public let codec: Codec
    public let metadata: [String: [UInt8]]
    let sync: [UInt8]
    let fileName: String?
    /// Largest block Sluice accepts, compressed or not.
    static let maxBlockBytes = 1 << 30

    public var bytesConsumed: Int64 { window.consumedBefore }

    public init(source: any ByteChunkReader, fileName: String?) throws(SluiceError) {
        self.source = source
        self.fileName = fileName
        let at = SourceLocation(file: fileName)
        var src = source
        let window = ByteWindow()
        self.window = window
        func ensure(_ n: Int) throws(SluiceError) -> Bool {
            while window.available < n { if try !window.fill(from: &src) { return false } }
            return true
        }
        guard try ensure(4), Array(window.bytes(window.start, window.start + 4)) == [0x4F, 0x62, 0x6A, 0x01] else {
            throw SluiceError(.malformedFile, "not an Avro object container file: it does not start with Obj 1", at: at)
        }
        window.consume(to: window.start + 4)
        var meta: [String: [UInt8]] = [:]
        var total = 0
        do throws(SluiceError) {
            while true {
                var n = try Self.streamLong(window, &src)
                if n == 0 { break }
                if n < 0 {
                    guard n != Int64.min else { throw SluiceError(.malformedFile, "header metadata block count out of range") }
                    n = -n
                    _ = try Self.streamLong(window, &src)
                }
                guard n <= 10_000 else { throw SluiceError(.malformedFile, "header metadata claims \(n) entries") }
                for _ in 0..<n {
                    let key = try Self.streamBytes(window, &src, limit: 1 << 20)
                    let value = try Self.streamBytes(window, &src, limit: 64 << 20)
                    total += key.count + value.count
                    guard total <= 64 << 20 else { throw SluiceError(.malformedFile, "header metadata is larger than 64 MiB") }
                    meta[String(decoding: key, as: UTF8.self)] = value
                }
            }
            guard try ensure(16) else { throw SluiceError(.malformedFile, "the file ends inside its header") }
        } catch {
            throw SluiceError(error.code, "Avro header: \(error.message)", at: at)
        }
        sync = Array(window.bytes(window.start, window.start + 16))
        window.consume(to: window.start + 16)
        self.source = src
        metadata = meta
        guard let schemaText = meta["avro.schema"] else { throw SluiceError(.malformedFile, "Avro header has no avro.schema", at: at) }
        let codecName = meta["avro.codec"].map { String(decoding: $0, as: UTF8.self) } ?? "null"
        guard let c = Codec(rawValue: codecName.isEmpty ? "null" : codecName) else {
            throw SluiceError(.unsupported, "Avro codec '\(SourceLocation.excerpt(codecName))' is not supported (null, deflate, snappy, zstandard)", at: at)
        }
        codec = c
        schema = try AvroSchema.parse(schemaText, fileName: fileName)  // last: once set, deinit releases it
    }

    deinit { schema.releaseGraph() }

    /// The file's top-level record fields as columns.
    public var columns: [ColumnSchema] { schema.columns }

    static func streamLong(_ w: ByteWindow, _ src: inout any ByteChunkReader) throws(SluiceError) -> Int64 {
        while true {
            let avail = UnsafeRawBufferPointer(start: w.base + w.start, count: w.available)
            var c = AvroCursor(avail)
            if let v = try? c.long() {
                w.consume(to: w.start + c.pos)
                return v
            }
            if w.available >= 10 { throw SluiceError(.malformedFile, "a number is longer than 10 bytes") }
            guard try w.fill(from: &src) else { throw SluiceError(.malformedFile, "the file ends inside a number") }
        }
    }

    static func streamBytes(_ w: ByteWindow, _ src: inout any ByteChunkReader, limit: Int) throws(SluiceError) -> [UInt8] {
        let n = try streamLong(w, &src)
        guard n >= 0, n <= Int64(limit) else { throw SluiceError(.malformedFile, "a length of \(n) bytes is out of range") }
        while w.available < Int(n) {
            guard try w.fill(from: &src) else { throw SluiceError(.malformedFile, "the file ends inside a value of \(n) bytes") }
        }
        let out = Array(w.bytes(w.start, w.start + Int(n)))
        w.consume(to: w.start + Int(n))
        return out
    }

    /// The next block: its object count and decompressed data. Nil at the end of the file.
    public func nextBlock() throws(SluiceError) -> (count: Int, data: [UInt8])? {
        let at = SourceLocation(file: fileName)
        if window.available == 0 {
            guard try window.fill(from: &source) else { return nil }
        }
        let start = bytesConsumed
        do throws(SluiceError) {
            let count = try Self.streamLong(window, &source)
            let size = try Self.streamLong(window, &source)
            guard count >= 0, size >= 0, size <= Int64(Self.maxBlockBytes) else {
                throw SluiceError(.malformedFile, "a block claims \(count) objects in \(size) bytes")
            }
            let n = Int(size)
            while window.available < n + 16 {
                guard try window.fill(from: &source) else { throw SluiceError(.malformedFile, "the file ends inside a block of \(n) bytes") }
            }
            let raw = window.bytes(window.start, window.start + n)
            guard Array(window.bytes(window.start + n, window.start + n + 16)) == sync else {
                throw SluiceError(.malformedFile, "a block does not end with the file's sync marker")
            }
            let data = try decompress(raw)
            guard Int64(count) <= Int64(data.count) + 4096 else { throw SluiceError(.malformedFile, "a block claims \(count) objects in \(data.count) bytes") }
            window.consume(to: window.start + n + 16)
            return (Int(count), data)
        } catch {
            throw SluiceError(error.code, "Avro block at byte \(start): \(error.message)", at: at)
        }
    }

    func decompress(_ raw: UnsafeRawBufferPointer) throws(SluiceError) -> [UInt8] {
        switch codec {
        case .null:
            return Array(raw)
        case .deflate:
            var out: [UInt8] = []
            try Zlib.inflate(raw, framing: .raw, limit: min(Self.maxBlockBytes, raw.count &* 1032 &+ 64), into: &out)
            return out
        case .snappy:
            guard raw.count >= 4 else { throw SluiceError(.malformedFile, "snappy block without its checksum") }
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
            let out = try Snappy.decompress(body, limit: min(Self.maxBlockBytes, body.count &* 32 &+ 64))
            let want = UInt32(raw[raw.count - 4]) << 24 | UInt32(raw[raw.count - 3]) << 16 | UInt32(raw[raw.count - 2]) << 8 | UInt32(raw[raw.count - 1])
            let got = out.withUnsafeBytes { Zlib.crc32($0) }
            guard got == want else { throw SluiceError(.malformedFile, "snappy block checksum mismatch") }
            return out
        case .zstandard:
            return try Zstd.decompressFrame(raw, limit: min(Self.maxBlockBytes, raw.count &* 1024 &+ 64))
        }
    }
}
