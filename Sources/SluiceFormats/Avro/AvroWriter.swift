public import SluiceCore

/// Writes batches as an Avro object container file: one record schema derived from the
/// table schema (nullable columns as `["null", T]` unions, Sluice types as Avro logical
/// types), blocks of about `blockBytes`, compressed with the chosen codec.
public final class AvroWriter: BatchWriter {
    let sink: any ByteSink
    let schema: TableSchema
    let codec: AvroReader.Codec
    let blockBytes: Int
    let sync: [UInt8]
    var block: [UInt8] = []
    var blockCount = 0
    public private(set) var rowsWritten: Int64 = 0
    var finished = false
    /// The schema written to the header, as JSON text.
    public let schemaJSON: String

    public init(sink: any ByteSink, schema: TableSchema, recordName: String = "row", codec: AvroReader.Codec = .deflate,
                blockBytes: Int = 1 << 20) throws(SluiceError) {
        for c in schema.columns + [ColumnSchema(name: recordName, type: .text)] where !Self.validName(c.name) {
            throw SluiceError(.invalidArgument, "'\(c.name)' is not an Avro name (letters, digits and _, not starting with a digit)")
        }
        self.sink = sink
        self.schema = schema
        self.codec = codec
        self.blockBytes = max(1, blockBytes)
        sync = Self.newSync()
        schemaJSON = Self.schemaJSON(schema, recordName: recordName)
        try sink.write(Self.header(schemaJSON: schemaJSON, codec: codec, sync: sync))
    }

    /// 16 random bytes that end every block.
    static func newSync() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    /// A container file's header: magic, the schema and codec, the sync marker.
    static func header(schemaJSON: String, codec: AvroReader.Codec, sync: [UInt8]) -> [UInt8] {
        var header: [UInt8] = [0x4F, 0x62, 0x6A, 0x01]
        long(2, into: &header)
        for (k, v) in [("avro.schema", Array(schemaJSON.utf8)), ("avro.codec", Array(codec.rawValue.utf8))] {
            bytes(Array(k.utf8), into: &header)
            bytes(v, into: &header)
        }
        long(0, into: &header)
        return header + sync
    }

    /// A block: its record count, its size, the records, the sync marker.
    static func block(count: Int, body: [UInt8], sync: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 36)
        long(Int64(count), into: &out)
        long(Int64(body.count), into: &out)
        out += body
        out += sync
        return out
    }

    static func validName(_ s: String) -> Bool {
        guard let f = s.utf8.first, f == UInt8(ascii: "_") || (f | 0x20 >= UInt8(ascii: "a") && f | 0x20 <= UInt8(ascii: "z")) else { return false }
        return s.utf8.allSatisfy { $0 == UInt8(ascii: "_") || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "z")) || ($0 >= 48 && $0 <= 57) }
    }

    /// The Avro type (JSON) of a column type.
    static func avroType(_ t: ColumnType) -> String {
        switch t {
        case .int64: "\"long\""
        case .float64: "\"double\""
        case .bool: "\"boolean\""
        case .decimal(let p, let s?): "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":\(p),\"scale\":\(s)}"
        case .decimal(_, nil), .text: "\"string\""
        case .json: "{\"type\":\"string\",\"sqlType\":\"json\"}"
        case .bytes: "\"bytes\""
        case .date: "{\"type\":\"int\",\"logicalType\":\"date\"}"
        case .timestamp: "{\"type\":\"long\",\"logicalType\":\"local-timestamp-micros\"}"
        case .timestamptz: "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}"
        case .time: "{\"type\":\"long\",\"logicalType\":\"time-micros\"}"
        case .uuid: "{\"type\":\"string\",\"logicalType\":\"uuid\"}"
        }
    }

    static func schemaJSON(_ schema: TableSchema, recordName: String) -> String {
        let fields = schema.columns.map { c in
            let t = avroType(c.type)
            return c.nullable ? "{\"name\":\"\(c.name)\",\"type\":[\"null\",\(t)],\"default\":null}" : "{\"name\":\"\(c.name)\",\"type\":\(t)}"
        }
        return "{\"type\":\"record\",\"name\":\"\(recordName)\",\"fields\":[\(fields.joined(separator: ","))]}"
    }

    @inline(__always) static func long(_ v: Int64, into out: inout [UInt8]) {
        var u = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        while u >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: u) | 0x80)
            u >>= 7
        }
        out.append(UInt8(u))
    }

    static func bytes<C: Collection>(_ b: C, into out: inout [UInt8]) where C.Element == UInt8 {
        long(Int64(b.count), into: &out)
        out.append(contentsOf: b)
    }

    /// Minimal two's-complement big-endian bytes of a decimal's unscaled value.
    static func decimalBytes(_ v: Int128, into out: inout [UInt8]) {
        var n = 16
        let u = UInt128(bitPattern: v)
        while n > 1 {
            let top = UInt8(truncatingIfNeeded: u >> UInt128((n - 1) * 8))
            let next = UInt8(truncatingIfNeeded: u >> UInt128((n - 2) * 8))
            if (top == 0 && next & 0x80 == 0) || (top == 0xFF && next & 0x80 != 0) { n -= 1 } else { break }
        }
        long(Int64(n), into: &out)
        for k in stride(from: n - 1, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: u >> UInt128(k * 8))) }
    }

    public func write(_ batch: RecordBatch) throws(SluiceError) {
        guard !finished else { throw SluiceError(.invalidArgument, "the Avro file is already finished") }
        guard batch.columns.count == schema.columns.count else {
            throw SluiceError(.invalidArgument, "a batch of \(batch.columns.count) columns for a \(schema.columns.count)-column Avro file")
        }
        for (c, col) in batch.columns.enumerated() where col.type != schema.columns[c].type {
            throw SluiceError(.invalidArgument, "column '\(schema.columns[c].name)' is \(schema.columns[c].type) but the batch holds \(col.type)")
        }
        let cols = schema.columns
        var text: [UInt8] = []
        for i in 0..<batch.count {
            for (c, col) in batch.columns.enumerated() {
                if cols[c].nullable {
                    if col.isNull(i) { block.append(0); continue }
                    block.append(2)  // branch 1, zig-zag encoded
                } else if col.isNull(i) {
                    throw SluiceError(.invalidArgument, "NULL in NOT NULL column '\(cols[c].name)'")
                }
                switch col.type {
                case .int64, .date, .timestamp, .timestamptz, .time: Self.long(col.ints[i], into: &block)
                case .bool: block.append(col.ints[i] != 0 ? 1 : 0)
                case .float64: withUnsafeBytes(of: col.doubles[i].bitPattern.littleEndian) { block.append(contentsOf: $0) }
                case .decimal(_, _?): Self.decimalBytes(col.decimals[i].significand, into: &block)
                case .decimal(_, nil): Self.bytes(Array(col.decimals[i].text.utf8), into: &block)
                case .text, .json, .bytes: Self.bytes(col.bytes(at: i), into: &block)
                case .uuid:
                    text.removeAll(keepingCapacity: true)
                    ValueText.uuid(col.bytes(at: i), into: &text)
                    Self.bytes(text, into: &block)
                }
            }
            blockCount += 1
            rowsWritten += 1
            if block.count >= blockBytes { try flushBlock() }
        }
    }

    func flushBlock() throws(SluiceError) {
        guard blockCount > 0 else { return }
        var body: [UInt8] = []
        try block.withBytes { (b) throws(SluiceError) in
            switch codec {
            case .null: body = block
            case .deflate: try Zlib.deflate(b, framing: .raw, into: &body)
            case .snappy:
                Snappy.compress(b, into: &body)
                let crc = Zlib.crc32(b)
                body += [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)]
            case .zstandard: try Zstd.compress(b, into: &body)
            }
        }
        try sink.write(Self.block(count: blockCount, body: body, sync: sync))
        block.removeAll(keepingCapacity: true)
        blockCount = 0
    }

    public func finish() throws(SluiceError) {
        guard !finished else { return }
        try flushBlock()
        finished = true
    }
}
