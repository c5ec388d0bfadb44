import Testing
import Foundation
@testable import SluiceFormats
import SluiceCore
import SluiceTesting

/// Seed files committed for the fuzzers (written by pyarrow and fastavro).
func corpus(_ kind: String) -> [(name: String, bytes: [UInt8])] {
    let dir = Bundle.module.path(forResource: "Fixtures/corpus/" + kind, ofType: nil)!
    return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map {
        ($0, Array(FileManager.default.contents(atPath: dir + "/" + $0)!))
    }
}

/// Rows read from an Avro file, or the error that stopped it.
func avroRows(_ bytes: [UInt8]) -> Result<Int, SluiceError> {
    do throws(SluiceError) {
        let file = try AvroReader(source: MemoryChunkReader(bytes, chunkSize: 777), fileName: "fuzz.avro")
        let reader = try AvroBatchReader(file: file, spec: ReadSpec(schema: TableSchema(columns: file.columns), fileName: "fuzz.avro"))
        var n = 0
        while let b = try reader.next() { n += b.rowsRead }
        return .success(n)
    } catch {
        return .failure(error)
    }
}

/// Builds Avro container files by hand, to say exactly what is wrong with them.
struct AvroBuilder {
    var schema: String
    var codec = "null"
    var sync = [UInt8](repeating: 7, count: 16)

    func header() -> [UInt8] {
        var h: [UInt8] = [0x4F, 0x62, 0x6A, 0x01]
        AvroWriter.long(2, into: &h)
        AvroWriter.bytes(Array("avro.schema".utf8), into: &h)
        AvroWriter.bytes(Array(schema.utf8), into: &h)
        AvroWriter.bytes(Array("avro.codec".utf8), into: &h)
        AvroWriter.bytes(Array(codec.utf8), into: &h)
        AvroWriter.long(0, into: &h)
        return h + sync
    }

    func block(count: Int64, _ data: [UInt8], size: Int64? = nil, sync: [UInt8]? = nil) -> [UInt8] {
        var b: [UInt8] = []
        AvroWriter.long(count, into: &b)
        AvroWriter.long(size ?? Int64(data.count), into: &b)
        return b + data + (sync ?? self.sync)
    }
}

@Suite("Hostile Parquet and Avro files fail cleanly")
struct HostileFileTests {
    static func expectError(_ e: SluiceError?, _ fragment: String, file: String = "fuzz.parquet", sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        guard let e else { Issue.record("expected an error containing '\(fragment)'", sourceLocation: sourceLocation); return }
        #expect(e.description.contains(fragment), "\(e.description)", sourceLocation: sourceLocation)
        #expect(e.description.contains(file), "the error names no file: \(e.description)", sourceLocation: sourceLocation)
    }

    /// A one-column, one-page Parquet file from our writer, and its footer.
    static func simpleParquet(codec: Parquet.Codec = .snappy) throws -> (bytes: [UInt8], meta: Parquet.FileMetaData) {
        let sink = MemorySink()
        var options = ParquetWriteOptions()
        options.compression = codec
        options.dictionary = false
        let schema = TableSchema(columns: [ColumnSchema(name: "s", type: .text)])
        let w = try ParquetWriter(sink: sink, schema: schema, options: options)
        var b = BatchBuilder(schema: schema, capacity: 100)
        for i in 0..<100 { b.beginRow(line: Int64(i)); b.setText(0, String(repeating: "x", count: i % 7)); _ = b.endRow() }
        try w.write(b.take())
        try w.finish()
        let file = try ParquetFile(source: MemoryRandomAccess(sink.bytes))
        return (sink.bytes, file.metadata)
    }

    /// The file with its data bytes replaced and its footer re-encoded from `meta`.
    static func rebuild(data: [UInt8], meta: Parquet.FileMetaData) -> [UInt8] {
        let footer = Parquet.encode(meta)
        let n = UInt32(footer.count)
        return data + footer + [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)] + Parquet.magic
    }

    static func dataPart(_ bytes: [UInt8]) -> [UInt8] {
        let n = Int(UInt32(bytes[bytes.count - 8]) | UInt32(bytes[bytes.count - 7]) << 8 | UInt32(bytes[bytes.count - 6]) << 16 | UInt32(bytes[bytes.count - 5]) << 24)
        return Array(bytes[0..<(bytes.count - 8 - n)])
    }

    @Test("Parquet: empty, bad magic, encrypted, footer past the start")
    func parquetFraming() throws {
        Self.expectError(FuzzTargets.parquet([]), "only 0 bytes")
        let (good, _) = try Self.simpleParquet()
        #expect(FuzzTargets.parquet(good) == nil)
        var bad = good
        bad[0] = UInt8(ascii: "X")
        Self.expectError(FuzzTargets.parquet(bad), "does not start with PAR1")
        bad = good
        bad[bad.count - 1] = UInt8(ascii: "E")
        Self.expectError(FuzzTargets.parquet(bad), "encrypted")
        bad = good
        bad.replaceSubrange((bad.count - 8)..<(bad.count - 4), with: [0xFF, 0xFF, 0xFF, 0x7F])
        Self.expectError(FuzzTargets.parquet(bad), "footer length 2147483647 does not fit")
    }

    @Test("Parquet truncated at every length fails, naming the file")
    func parquetTruncated() throws {
        for (name, bytes) in corpus("parquet") + [("ours", try Self.simpleParquet().bytes)] {
            for cut in 0..<bytes.count {
                guard let e = FuzzTargets.parquet(Array(bytes[0..<cut])) else { Issue.record("\(name) cut at \(cut) read without error"); break }
                #expect(e.description.contains("fuzz.parquet"), "\(e.description)")
            }
        }
    }

    @Test("Parquet metadata that lies: offsets past the end, row counts, absurd schemas")
    func parquetMetadata() throws {
        let (good, meta) = try Self.simpleParquet()
        let data = Self.dataPart(good)
        var m = meta
        m.rowGroups[0].columns[0].meta!.dataPageOffset = 1 << 40
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "outside the file's data")
        m = meta
        m.rowGroups[0].columns[0].meta!.totalCompressedSize = Int64(Int32.max)
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "outside the file's data")
        m = meta
        m.numRows += 5
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "row groups hold 100 rows but the footer says 105")
        m = meta
        m.rowGroups[0].numRows = 200
        m.numRows = 200
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "ends 100 rows early")
        m = meta
        m.schema[0].numChildren = 1_000_000
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "claims 1000000 children")
        m = meta
        m.rowGroups[0].columns[0].meta!.codec = .gzip
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "column 's'")
        m = meta
        m.rowGroups[0].columns[0].meta!.type = .int64
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "the schema says")
        // A schema nested 100 groups deep.
        m = meta
        var deep: [Parquet.SchemaElement] = [m.schema[0]]
        deep[0].numChildren = 1
        for i in 0..<100 {
            var g = Parquet.SchemaElement()
            g.name = "g\(i)"
            g.repetition = .optional
            g.numChildren = 1
            deep.append(g)
        }
        deep.append(m.schema[1])
        m.schema = deep
        Self.expectError(FuzzTargets.parquet(Self.rebuild(data: data, meta: m)), "deeper than 64")
    }

    @Test("Parquet pages that lie about their sizes")
    func parquetPages() throws {
        let (good, meta) = try Self.simpleParquet()
        let start = Int(meta.rowGroups[0].columns[0].meta!.dataPageOffset)
        let (header, hl) = try Array(good[start...]).withBytes { (b) throws(SluiceError) in try Parquet.pageHeader(b) }
        func withHeader(_ edit: (inout Parquet.PageHeader) -> Void) -> [UInt8] {
            var h = header
            edit(&h)
            let hb = Parquet.encode(h)
            var data = Array(Self.dataPart(good)[0..<start]) + hb + Array(Self.dataPart(good)[(start + hl)...])
            var m = meta
            m.rowGroups[0].columns[0].meta!.totalCompressedSize += Int64(hb.count - hl)
            if data.count < 4 { data = [] }
            return Self.rebuild(data: data, meta: m)
        }
        Self.expectError(FuzzTargets.parquet(withHeader { $0.uncompressedSize = Int32.max }), "claims 2147483647 uncompressed bytes")
        Self.expectError(FuzzTargets.parquet(withHeader { $0.compressedSize = Int32.max }), "runs past the column chunk")
        Self.expectError(FuzzTargets.parquet(withHeader { $0.dataPage!.numValues = Int32.max }), "more than the chunk has left")
        Self.expectError(FuzzTargets.parquet(withHeader { $0.uncompressedSize -= 1 }), "column 's'")
        Self.expectError(FuzzTargets.parquet(withHeader { $0.dataPage!.encoding = 77 }), "column 's'")
    }

    @Test("Avro: bad magic, absurd counts and lengths, wrong sync, wrong codec data")
    func avroCrafted() throws {
        let schema = #"{"type":"record","name":"R","fields":[{"name":"s","type":"string"}]}"#
        let a = AvroBuilder(schema: schema)
        var one: [UInt8] = []
        AvroWriter.bytes(Array("hello".utf8), into: &one)
        #expect(try avroRows(a.header() + a.block(count: 1, one)).get() == 1)

        Self.expectError(avroRows(Array("Obj".utf8)).failure, "does not start with Obj", file: "fuzz.avro")
        var huge: [UInt8] = [0x4F, 0x62, 0x6A, 0x01]
        AvroWriter.long(1 << 40, into: &huge)
        Self.expectError(avroRows(huge).failure, "claims 1099511627776 entries", file: "fuzz.avro")
        var long: [UInt8] = []
        AvroWriter.long(1 << 31, into: &long)
        Self.expectError(avroRows(a.header() + a.block(count: 1, long + [1, 2, 3])).failure, "a length of 2147483648 bytes runs past", file: "fuzz.avro")
        Self.expectError(avroRows(a.header() + a.block(count: 1 << 31, one)).failure, "claims 2147483648 objects", file: "fuzz.avro")
        Self.expectError(avroRows(a.header() + a.block(count: 1, one, size: 1 << 30)).failure, "ends inside a block", file: "fuzz.avro")
        Self.expectError(avroRows(a.header() + a.block(count: 1, one, size: 1 << 31)).failure, "claims 1 objects in 2147483648 bytes", file: "fuzz.avro")
        Self.expectError(avroRows(a.header() + a.block(count: 1, one, sync: [UInt8](repeating: 9, count: 16))).failure, "sync marker", file: "fuzz.avro")
        Self.expectError(avroRows(a.header() + a.block(count: 2, one)).failure, "data ends inside", file: "fuzz.avro")
        Self.expectError(avroRows(a.header() + a.block(count: 1, one + [0])).failure, "after its last object", file: "fuzz.avro")

        var d = AvroBuilder(schema: schema)
        d.codec = "deflate"
        Self.expectError(avroRows(d.header() + d.block(count: 1, [1, 2, 3, 4, 5])).failure, "compressed data", file: "fuzz.avro")
        d.codec = "snappy"
        var snappy: [UInt8] = []
        one.withUnsafeBytes { Snappy.compress($0, into: &snappy) }
        Self.expectError(avroRows(d.header() + d.block(count: 1, snappy + [0, 0, 0, 0])).failure, "checksum mismatch", file: "fuzz.avro")
        d.codec = "bzip2"
        Self.expectError(avroRows(d.header()).failure, "codec 'bzip2' is not supported", file: "fuzz.avro")
    }

    @Test("Avro schemas that are wrong or never end")
    func avroSchemas() throws {
        Self.expectError(avroRows(AvroBuilder(schema: "{nope").header()).failure, "not valid JSON", file: "fuzz.avro")
        Self.expectError(avroRows(AvroBuilder(schema: #"{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}"#).header()).failure,
                         "unknown type 'Nope'", file: "fuzz.avro")
        Self.expectError(avroRows(AvroBuilder(schema: #"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}"#).header()).failure,
                         "names field 'a' twice", file: "fuzz.avro")
        // A record that contains itself with no way out: its values never end.
        let loop = AvroBuilder(schema: #"{"type":"record","name":"L","fields":[{"name":"next","type":"L"}]}"#)
        Self.expectError(avroRows(loop.header() + loop.block(count: 1, [0])).failure, "nest deeper than 64", file: "fuzz.avro")
        let union = AvroBuilder(schema: #"{"type":"record","name":"U","fields":[{"name":"u","type":["null","int","string"]}]}"#)
        Self.expectError(avroRows(union.header() + union.block(count: 1, [10])).failure, "union branch 5 of 3", file: "fuzz.avro")
        var deep = "\"int\""
        for _ in 0..<100 { deep = "{\"type\":\"array\",\"items\":\(deep)}" }
        Self.expectError(avroRows(AvroBuilder(schema: #"{"type":"record","name":"D","fields":[{"name":"a","type":"# + deep + "}]}").header()).failure,
                         "deeper than 64", file: "fuzz.avro")
    }

    @Test("Avro truncated at every length fails or reads fewer rows, never crashes")
    func avroTruncated() throws {
        for (name, bytes) in corpus("avro") {
            guard case .success(let total) = avroRows(bytes) else { continue }  // a regression input, bad on purpose
            for cut in 0..<bytes.count {
                switch avroRows(Array(bytes[0..<cut])) {
                case .success(let n): #expect(n < total, "\(name) cut at \(cut) read \(n) of \(total) rows")
                case .failure(let e): #expect(e.description.contains("fuzz.avro"), "\(e.description)")
                }
            }
        }
    }

    /// A short bounded pass of the seeded mutation fuzzer over the committed corpus;
    /// `scripts/fuzz.sh` runs libFuzzer for longer. SLUICE_FUZZ_SECONDS sets the time.
    @Test("mutated corpus files never crash or hang the readers", arguments: ["parquet", "avro"])
    func mutations(kind: String) {
        let seconds = ProcessInfo.processInfo.environment["SLUICE_FUZZ_SECONDS"].flatMap(Double.init) ?? 4
        let files = corpus(kind).map(\.bytes)
        var stats = Mutator.Stats()
        var unnamed: [String] = []
        Mutator.run(corpus: files, seed: 20261122, seconds: seconds, stats: &stats) { input in
            let e = kind == "avro" ? avroRows(input).failure : FuzzTargets.parquet(input)
            if let e, !e.description.contains("fuzz.\(kind)"), unnamed.count < 5 { unnamed.append(e.description) }
        }
        #expect(stats.runs > 100)
        #expect(stats.slowest < 2, "an input took \(stats.slowest) s")
        #expect(unnamed.isEmpty, "errors that name no file: \(unnamed)")
    }
}

/// The expression language and the pipeline steps over extreme values: a short seeded pass in
/// the suite, libFuzzer with ASan for long in `scripts/fuzz.sh 1800 steps`.
@Suite struct StepFuzzTests {
    @Test func mutatedStepsAndRowsNeverTrap() throws {
        let seconds = ProcessInfo.processInfo.environment["SLUICE_FUZZ_SECONDS"].flatMap(Double.init) ?? 4
        let files = corpus("steps").map(\.bytes)
        var stats = Mutator.Stats()
        var outcomes = (kept: 0, dropped: 0, rejected: 0)
        Mutator.run(corpus: files, seed: 20261206, seconds: seconds, stats: &stats) { input in
            let c = StepFuzzTarget.run(input)
            outcomes = (outcomes.kept + c.kept, outcomes.dropped + c.dropped, outcomes.rejected + c.rejected)
        }
        #expect(stats.runs > 1000)
        // The generator reaches every outcome, rejects (values that do not fit) included.
        #expect(outcomes.kept > 0 && outcomes.dropped > 0 && outcomes.rejected > 0, "\(outcomes)")
    }
}

extension Result {
    var failure: Failure? { if case .failure(let e) = self { e } else { nil } }
}
