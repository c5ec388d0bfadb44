import Testing
import Foundation
@testable import SluiceFormats
import SluiceCore
import SluiceTesting

/// Canonical JSON of Sluice values, comparable with what `gen_oracles.py` writes for the
/// values pyarrow and fastavro read.
enum Canon {
    static func cell(_ col: Column, _ i: Int) -> JSONValue {
        if col.isNull(i) { return .null }
        switch col.type {
        case .int64: return .number(String(col.ints[i]))
        case .bool: return .bool(col.ints[i] != 0)
        case .float64:
            let v = col.doubles[i]
            return v.isFinite ? .number(ValueText.double(v)) : .string(ValueText.double(v))
        case .decimal: return .string(col.decimals[i].text)
        case .bytes: return .string(Base64.encode(col.bytes(at: i)))
        case .json: return (try? JSONParser.parse(String(decoding: col.bytes(at: i), as: UTF8.self))) ?? .string("<invalid json>")
        default: return .string(ValueText.render(col, i) ?? "")
        }
    }

    /// Equality up to number spelling (`1.5` and `1.50` as floats), member order, and
    /// a number against a string of the same text (unsigned 64-bit ints read as decimals).
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)):
            if x == y { return true }
            if let i = Int64(x), let j = Int64(y) { return i == j }
            if Int64(x) != nil && Int64(y) != nil { return false }
            guard let p = Double(x), let q = Double(y) else { return false }
            return p == q
        case (.string(let s), .number(let n)), (.number(let n), .string(let s)): return s == n
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            guard x.count == y.count else { return false }
            return x.allSatisfy { m in y.contains { $0.key == m.key && same($0.value, m.value) } }
        default: return a == b
        }
    }

    static func rows(_ batches: [RecordBatch]) -> [[JSONValue]] {
        batches.flatMap { b in (0..<b.count).map { i in b.columns.map { cell($0, i) } } }
    }

    /// Cell-by-cell differences (at most `limit`), naming file, row and column.
    static func diff(_ file: String, columns: [String], got: [[JSONValue]], want: [[JSONValue]], limit: Int = 10) -> [String] {
        var out: [String] = []
        if got.count != want.count { out.append("\(file): \(got.count) rows, expected \(want.count)") }
        for (r, (g, w)) in zip(got, want).enumerated() {
            for c in 0..<max(g.count, w.count) where out.count < limit {
                let gv = c < g.count ? g[c] : .string("<missing>"), wv = c < w.count ? w[c] : .string("<missing>")
                if !same(gv, wv) { out.append("\(file) row \(r + 1) column \(c < columns.count ? columns[c] : "#\(c)"): got \(gv.text), expected \(wv.text)") }
            }
        }
        return out
    }
}

func readAll(_ reader: any BatchReader) throws -> [RecordBatch] {
    var out: [RecordBatch] = []
    while let b = try reader.next() {
        #expect(b.rejects.isEmpty, "rejects: \(b.rejects.prefix(3))")
        out.append(b.batch)
    }
    return out
}

/// Opens a Parquet or Avro file from memory with the schema it carries.
func openTyped(_ bytes: [UInt8], name: String, batchRows: Int) throws -> (reader: any BatchReader, columns: [ColumnSchema]) {
    if name.hasSuffix(".parquet") {
        let file = try ParquetFile(source: MemoryRandomAccess(bytes), fileName: name)
        let cols = file.schema.columns
        return (try ParquetBatchReader(file: file, spec: ReadSpec(schema: TableSchema(columns: cols), limits: ReadLimits(batchRows: batchRows), fileName: name)), cols)
    }
    let file = try AvroReader(source: MemoryChunkReader(bytes, chunkSize: 1000), fileName: name)
    let cols = file.columns
    return (try AvroBatchReader(file: file, spec: ReadSpec(schema: TableSchema(columns: cols), limits: ReadLimits(batchRows: batchRows), fileName: name)), cols)
}

@Suite("Parquet and Avro against pyarrow and fastavro")
struct OracleTests {
    static func manifest() throws -> (dir: String, files: [JSONValue]) {
        let dir = try Oracle.fixtures.get()
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json"))
        let doc = try data.withUnsafeBytes { try JSONParser.parse($0) }
        guard case .array(let files)? = doc["files"] else { throw Oracle.Failure(description: "manifest without files") }
        return (dir, files)
    }

    static func expectedRows(_ entry: JSONValue) -> [[JSONValue]] {
        guard case .array(let rows)? = entry["rows"] else { return [] }
        return rows.map { if case .array(let cells) = $0 { cells } else { [] } }
    }

    static func names(_ v: JSONValue?) -> [String] {
        guard case .array(let xs)? = v else { return [] }
        return xs.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    @Test("every file pyarrow and fastavro wrote reads back with their values, cell by cell")
    func referenceFiles() throws {
        let (dir, files) = try Self.manifest()
        #expect(files.count >= 40)
        var problems: [String] = []
        for entry in files {
            guard case .string(let name)? = entry["file"] else { continue }
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            // Odd batch sizes cross page, row group and block boundaries.
            for batchRows in [97, 16_384] {
                do {
                    let (reader, cols) = try openTyped(bytes, name: name, batchRows: batchRows)
                    let want = Self.names(entry["columns"])
                    if cols.map(\.name) != want { problems.append("\(name): columns \(cols.map(\.name)), expected \(want)") }
                    problems += Canon.diff(name, columns: want, got: Canon.rows(try readAll(reader)), want: Self.expectedRows(entry))
                } catch {
                    problems.append("\(name): \(error)")
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.count) problems:\n\(problems.prefix(40).joined(separator: "\n"))")
    }

    @Test("types come from the file's schema")
    func inferredTypes() throws {
        let (dir, _) = try Self.manifest()
        let file = try ParquetFile(source: MemoryRandomAccess(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/types_snappy_dict_v1.parquet")))))
        let types = Dictionary(uniqueKeysWithValues: file.schema.columns.map { ($0.name, $0.type) })
        #expect(types["i8"] == .int64 && types["u32"] == .int64 && types["u64"] == .decimal(precision: 20, scale: 0))
        #expect(types["f32"] == .float64 && types["b"] == .bool && types["s"] == .text && types["bin"] == .bytes)
        #expect(types["d9"] == .decimal(precision: 9, scale: 2) && types["d38"] == .decimal(precision: 38, scale: 10) && types["d50"] == .text)
        #expect(types["date"] == .date && types["t_ms"] == .time && types["ts_ms"] == .timestamp && types["ts_us_utc"] == .timestamptz)
        #expect(types["uuid"] == .uuid && types["js"] == .json && types["dict_s"] == .text)
        let nested = try ParquetFile(source: MemoryRandomAccess(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/nested_v1.parquet")))))
        #expect(nested.schema.columns.map(\.type) == [.int64, .json, .json, .json, .json, .json, .text])
        let avro = try AvroReader(source: MemoryChunkReader(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/avro_null.avro"))), chunkSize: 1 << 16), fileName: nil)
        let at = Dictionary(uniqueKeysWithValues: avro.columns.map { ($0.name, $0.type) })
        #expect(at["id"] == .int64 && at["i"] == .int64 && at["f"] == .float64 && at["e"] == .text && at["fx"] == .bytes)
        #expect(at["dec"] == .decimal(precision: 12, scale: 3) && at["decf"] == .decimal(precision: 20, scale: 2))
        #expect(at["dt"] == .date && at["tms"] == .time && at["tsms"] == .timestamptz && at["lts"] == .timestamp && at["u"] == .uuid)
        #expect(at["arr"] == .json && at["mp"] == .json && at["rec"] == .json && at["un"] == .json && at["node"] == .json)
    }

    @Test("projection reads only the named columns, dotted paths reach into structs, missing ones are NULL")
    func projection() throws {
        let (dir, _) = try Self.manifest()
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/nested_v2.parquet")))
        let file = try ParquetFile(source: MemoryRandomAccess(bytes), fileName: "nested_v2.parquet")
        let schema = TableSchema(columns: [
            ColumnSchema(name: "inner_b", type: .text, source: "st.inner.b"),
            ColumnSchema(name: "id_text", type: .text, source: "id"),
            ColumnSchema(name: "absent", type: .int64),
        ])
        let reader = try ParquetBatchReader(file: file, spec: ReadSpec(schema: schema, fileName: "nested_v2.parquet"))
        let rows = Canon.rows(try readAll(reader))
        #expect(rows.count == 600)
        #expect(rows[1] == [.string("v1"), .string("1"), .null])
        #expect(rows[0][0] == .null)  // inner is NULL when i % 3 == 0
        #expect(rows[4][0] == .null)  // st is NULL when i % 5 == 4
        #expect(reader.unusedFields == ["li", "ls", "mp", "ll", "req"])
    }
}

@Suite("Files Sluice writes, read by pyarrow and fastavro")
struct WriterOracleTests {
    static let schema = TableSchema(columns: [
        ColumnSchema(name: "id", type: .int64, nullable: false),
        ColumnSchema(name: "f", type: .float64),
        ColumnSchema(name: "b", type: .bool),
        ColumnSchema(name: "d", type: .decimal(precision: 12, scale: 3)),
        ColumnSchema(name: "dsmall", type: .decimal(precision: 5, scale: 1)),
        ColumnSchema(name: "dwide", type: .decimal(precision: 30, scale: 5)),
        ColumnSchema(name: "t", type: .text),
        ColumnSchema(name: "cat", type: .text),
        ColumnSchema(name: "j", type: .json),
        ColumnSchema(name: "by", type: .bytes),
        ColumnSchema(name: "dt", type: .date),
        ColumnSchema(name: "ts", type: .timestamp),
        ColumnSchema(name: "tz", type: .timestamptz),
        ColumnSchema(name: "tm", type: .time),
        ColumnSchema(name: "u", type: .uuid),
    ])

    /// `n` rows of every type with NULLs, negative values, unicode and empty strings.
    static func batch(_ n: Int, seed: UInt64) -> RecordBatch {
        var rng = SplitMix(seed: seed)
        var b = BatchBuilder(schema: schema, capacity: n)
        let words = ["", "plain", "ünïcødé ✓", "a,b\"c\nd", "日本"]
        for i in 0..<n {
            b.beginRow(line: Int64(i + 1))
            func text(_ c: Int, _ s: String?) { if let s { b.setText(c, s) } else { b.setNull(c) } }
            let null = { (k: Int) in (i + k) % 9 == 0 }
            text(0, String(Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &rng)))
            text(1, null(1) ? nil : ["1.5", "-0.001", "1e300", "3.141592653589793", "NaN", "-Infinity"][i % 6])
            text(2, null(2) ? nil : (i % 2 == 0 ? "true" : "false"))
            text(3, null(3) ? nil : "\(Int.random(in: -999_999_999...999_999_999, using: &rng)).\(i % 1000)")
            text(4, null(4) ? nil : "\(Int.random(in: -9999...9999, using: &rng)).\(i % 10)")
            text(5, null(5) ? nil : "\(UInt64.random(in: 0...UInt64.max, using: &rng))\(Int.random(in: 0...99999, using: &rng)).12345")
            text(6, null(6) ? nil : words[i % words.count] + String(i))
            text(7, null(7) ? nil : ["alpha", "beta", "gamma"][i % 3])
            text(8, null(8) ? nil : "{\"k\":\(i),\"a\":[1,\"x\",null],\"o\":{\"z\":true}}")
            text(9, null(0) ? nil : "\\x" + String(repeating: "ab01", count: i % 5))
            text(10, null(1) ? nil : "\(1900 + i % 300)-0\(1 + i % 9)-1\(i % 10)")
            text(11, null(2) ? nil : "19\(50 + i % 50)-12-31 23:59:59.\(100000 + i % 900000)")
            text(12, null(3) ? nil : "2024-02-29T12:00:00.\(100000 + i % 900000)+05:30")
            text(13, null(4) ? nil : "\(10 + i % 14):0\(i % 10):59.\(100000 + i)")
            text(14, null(5) ? nil : UUID().uuidString)
            #expect(b.endRow() == nil)
        }
        return b.take()
    }

    func roundTrip(_ name: String, batches: [RecordBatch], make: (MemorySink) throws -> any BatchWriter) throws -> (bytes: [UInt8], oracle: JSONValue) {
        let sink = MemorySink()
        let writer = try make(sink)
        for b in batches { try writer.write(b) }
        try writer.finish()
        let dir = TempDir()
        let path = dir.file(name)
        FileManager.default.createFile(atPath: path, contents: Data(sink.bytes))
        let data = try Oracle.dump(path)
        let doc = try data.withUnsafeBytes { try JSONParser.parse($0) }
        let want = Canon.rows(batches)
        var got: [[JSONValue]] = []
        if case .array(let rows)? = doc["rows"] { got = rows.map { if case .array(let c) = $0 { c } else { [] } } }
        // Avro has no JSON type: the oracle sees the JSON text as a string.
        let jsonAsText = name.hasSuffix(".avro")
        let adjusted = want.map { row in row.enumerated().map { c, v in jsonAsText && Self.schema.columns[c].type == .json && v != .null ? .string(v.text) : v } }
        let problems = Canon.diff(name, columns: Self.schema.columns.map(\.name), got: got, want: adjusted)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        // And Sluice reads its own file back the same.
        let (reader, _) = try openTyped(sink.bytes, name: name, batchRows: 1000)
        let again = Canon.diff(name + " (Sluice)", columns: Self.schema.columns.map(\.name), got: Canon.rows(try readAll(reader)), want: want)
        #expect(again.isEmpty, "\(again.joined(separator: "\n"))")
        return (sink.bytes, doc)
    }

    @Test("Parquet files Sluice writes open in pyarrow with equal values", arguments: [
        (Parquet.Codec.snappy, true), (.uncompressed, true), (.snappy, false), (.gzip, true), (.zstd, false),
    ])
    func parquet(codec: Parquet.Codec, dictionary: Bool) throws {
        let batches = [Self.batch(3000, seed: 1), Self.batch(1234, seed: 2)]
        var options = ParquetWriteOptions()
        options.compression = codec
        options.dictionary = dictionary
        options.rowGroupRows = 1500
        options.pageBytes = 8192
        options.dictionaryLimitBytes = 4096  // the t column outgrows it: dictionary then plain pages
        options.compat = .exact  // every logical type, checked against pyarrow's reading of it
        let (_, doc) = try roundTrip("w_\(codec)_\(dictionary).parquet", batches: batches) { try ParquetWriter(sink: $0, schema: Self.schema, options: options) }
        #expect(doc["row_groups"] == .number("3"))
    }

    @Test("Parquet statistics hold each row group's min, max and null count")
    func statistics() throws {
        let batch = Self.batch(2000, seed: 3)
        var options = ParquetWriteOptions()
        options.rowGroupRows = 2000
        options.compat = .exact
        let (_, doc) = try roundTrip("stats.parquet", batches: [batch]) { try ParquetWriter(sink: $0, schema: Self.schema, options: options) }
        guard case .array(let stats)? = doc["stats"] else { Issue.record("no stats"); return }
        for (c, col) in batch.columns.enumerated() where col.type != .float64 && col.type != .bool {
            var values: [JSONValue] = []
            var nulls = 0
            for i in 0..<col.count { if col.isNull(i) { nulls += 1 } else { values.append(Canon.cell(col, i)) } }
            guard case .array(let groups) = stats[c], case .array(let s)? = groups.first else { Issue.record("no stats for \(c)"); continue }
            #expect(s[2] == .number(String(nulls)), "null count of \(Self.schema.columns[c].name)")
            switch col.type {
            case .int64, .date, .timestamp, .timestamptz, .time:
                let ints = (0..<col.count).filter { !col.isNull($0) }.map { col.ints[$0] }
                #expect(Canon.same(s[0], Canon.cell(col, (0..<col.count).first { !col.isNull($0) && col.ints[$0] == ints.min()! }!)))
                #expect(Canon.same(s[1], Canon.cell(col, (0..<col.count).first { !col.isNull($0) && col.ints[$0] == ints.max()! }!)))
            case .decimal:
                let ds = (0..<col.count).filter { !col.isNull($0) }.map { col.decimals[$0].significand }
                #expect(Canon.same(s[0], .string(ExactDecimal(significand: ds.min()!, scale: col.decimals[0].scale).text)))
                #expect(Canon.same(s[1], .string(ExactDecimal(significand: ds.max()!, scale: col.decimals[0].scale).text)))
            default:
                break
            }
        }
    }

    @Test("Avro files Sluice writes open in fastavro with equal values", arguments: [AvroReader.Codec.null, .deflate, .snappy, .zstandard])
    func avro(codec: AvroReader.Codec) throws {
        let batches = [Self.batch(2500, seed: 4), Self.batch(10, seed: 5)]
        _ = try roundTrip("w_\(codec).avro", batches: batches) { try AvroWriter(sink: $0, schema: Self.schema, codec: codec, blockBytes: 16_000) }
    }

    @Test("an empty file is still a valid file")
    func empty() throws {
        _ = try roundTrip("empty.parquet", batches: []) { try ParquetWriter(sink: $0, schema: Self.schema) }
        _ = try roundTrip("empty.avro", batches: []) { try AvroWriter(sink: $0, schema: Self.schema) }
    }
}
