import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceFormats
@testable import SluiceLoad
import SluiceTesting

@Suite struct MappingSplitterTests {
    static let mapping = JSONMapping(name: "m", targets: [
        .init(entity: "orders", columns: [("id", .element(["id"])), ("note", .element(["note"])), ("meta", .element(["meta"])),
                                          ("ok", .element(["ok"])), ("src", .sourceName), ("line", .line)]),
        .init(entity: "items", explode: ["items"], columns: [("order", .root(["id"])), ("sku", .element(["sku"])), ("qty", .element(["qty"])),
                                                              ("first_tag", .element(["tags", "0"]))]),
    ])

    /// The parts as the tree parser and ``JSONMapping/rows(_:line:sourceName:)`` make them:
    /// the oracle the streaming splitter must match byte for byte.
    func oracle(_ records: [String], source: String) throws -> [String] {
        var writers = Self.mapping.targets.map { t in var w = CSVWriter(); w.writeRecord(t.columns.map(\.name)); return w }
        var scratch: [UInt8] = []
        for (n, text) in records.enumerated() {
            for (i, rows) in Self.mapping.rows(try JSONParser.parse(text), line: Int64(n + 1), sourceName: source).enumerated() {
                for case .object(let members) in rows {
                    for (c, m) in members.enumerated() {
                        if c > 0 { writers[i].appendDelimiter() }
                        writers[i].writeJSONField(m.value, scratch: &scratch)
                    }
                    writers[i].endRecord()
                }
            }
        }
        return writers.map { String(decoding: $0.output, as: UTF8.self) }
    }

    static let records = [
        #"{"id": "P1", "note": "needs, \"quotes\"\nand a break", "meta": {"a": [1, "x"], "b": null}, "ok": true, "items": [{"sku": "A", "qty": 2, "tags": ["new", "x"]}, {"sku": "B\u00e9"}]}"#,
        #"{"id": 2, "note": "", "meta": null, "ok": false, "items": []}"#,
        #"{"id": "P\u0033", "note": null, "items": {"not": "an array"}}"#,
        #"{"id": "P4", "items": [{"sku": "C", "qty": 1.50, "tags": []}, 7, {"qty": -3}]}"#,
    ]

    @Test func partsMatchTheTreeMapping() throws {
        let dir = TempDir()
        let file = dir.write("in.json", Self.records.joined(separator: "\n") + "\n")
        let parts = try MappingSplitter.split(file: file, mapping: Self.mapping, sourceName: "input/in.json", outDir: dir.file("parts"))
        let expected = try oracle(Self.records, source: "input/in.json")
        #expect(parts.map(\.rows) == [4, 5])
        for (p, e) in zip(parts, expected) { #expect(try String(contentsOfFile: p.path, encoding: .utf8) == e) }
    }

    /// Two good files around one that fails after more than a flush's worth of rows.
    static func cutFixture(_ dir: TempDir) -> (good1: String, bad: String, good2: String) {
        let many = (0..<30_000).map { #"{"id": "BAD-\#($0)", "note": "padding padding padding padding", "items": [{"sku": "S\#($0)"}]}"# }
        return (dir.write("a.json", "[" + records[0] + "," + records[1] + "]"),
                dir.write("bad.json", many.joined(separator: "\n") + "\n{\"id\": "),
                dir.write("c.json", records[3]))
    }

    /// A file that fails midway (after more than a flush's worth of rows) leaves the parts
    /// exactly as if it had never been added; the batch's other files are all there.
    @Test func aFailedFileIsCutOutOfTheBatch() throws {
        let dir = TempDir()
        let (good1, bad, good2) = Self.cutFixture(dir)
        let splitter = try MappingSplitter(mapping: Self.mapping, outDir: dir.file("batch"))
        try splitter.add(file: good1, sourceName: "a.json")
        #expect(throws: SluiceError.self) { try splitter.add(file: bad, sourceName: "bad.json") }
        try splitter.add(file: good2, sourceName: "c.json")
        let parts = try splitter.finish()
        let a = try oracle([Self.records[0], Self.records[1]], source: "a.json")
        let c = try oracle([Self.records[3]], source: "c.json")
        for i in 0..<2 {
            let body = c[i].split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)[1]
            #expect(try String(contentsOfFile: parts[i].path, encoding: .utf8) == a[i] + body)
        }
        #expect(parts.map(\.rows) == [3, 5])
        do {
            try splitter.add(file: good2, sourceName: "c.json")
            Issue.record("a finished splitter took another file")
        } catch {
            #expect(error.code == .aborted)
        }
    }

    @Test func malformedRecordsNameTheirFileAndLine() throws {
        let dir = TempDir()
        let file = dir.write("x.json", "{\"id\": 1}\n{\"id\": 2,}\n")
        do {
            _ = try MappingSplitter.split(file: file, mapping: Self.mapping, sourceName: "input/x.json", outDir: dir.file("p"))
            Issue.record("a malformed file split")
        } catch {
            #expect(error.description.contains("input/x.json") && error.description.contains("2"), "\(error)")
        }
        let notObject = dir.write("y.json", "[1]")
        #expect(throws: SluiceError.self) { try MappingSplitter.split(file: notObject, mapping: Self.mapping, sourceName: "y.json", outDir: dir.file("q")) }
    }

    /// A row's fields as the CSV parts hold them (nil: NULL), from the tree mapping.
    static func fields(_ records: [String], target: Int, source: String) throws -> [[String?]] {
        var out: [[String?]] = []
        for (n, text) in records.enumerated() {
            for case .object(let members) in Self.mapping.rows(try JSONParser.parse(text), line: Int64(n + 1), sourceName: source)[target] {
                out.append(members.map { m -> String? in
                    switch m.value {
                    case .null: nil
                    case .string(let s): s
                    case .number(let n): n
                    case .bool(let b): b ? "true" : "false"
                    case .array, .object: m.value.text
                    }
                })
            }
        }
        return out
    }

    /// How fastavro reads an Avro part: its field names and rows.
    static func fastavro(_ path: String) throws -> (columns: [String], rows: [[String?]]) {
        let doc = try JSONSerialization.jsonObject(with: try Oracle.dump(path)) as? [String: Any] ?? [:]
        let rows = (doc["rows"] as? [[Any]] ?? []).map { $0.map { $0 as? String } }
        return (doc["columns"] as? [String] ?? [], rows)
    }

    @Test func avroPartsHoldTheCSVFieldsAsFastavroReadsThem() throws {
        let dir = TempDir()
        let file = dir.write("in.json", Self.records.joined(separator: "\n"))
        let parts = try MappingSplitter.split(file: file, mapping: Self.mapping, sourceName: "in/x.json", outDir: dir.file("p"), avroFor: ["orders", "items"])
        #expect(parts.map(\.format) == [.avro, .avro] && parts.map(\.rows) == [4, 5])
        for (t, part) in parts.enumerated() {
            let read = try Self.fastavro(part.path)
            #expect(read.columns == Self.mapping.targets[t].columns.map(\.name))
            #expect(read.rows == (try Self.fields(Self.records, target: t, source: "in/x.json")))
        }
        // A name Avro cannot carry keeps that entity's part in CSV.
        let odd = JSONMapping(name: "m", targets: [.init(entity: "e", columns: [("has space", .element(["id"]))])])
        #expect(try MappingSplitter.split(file: file, mapping: odd, sourceName: "x", outDir: dir.file("q"), avroFor: ["e"]).map(\.format) == [.csv])
    }

    /// The same cut as ``aFailedFileIsCutOutOfTheBatch()`` with Avro parts: whole blocks go.
    @Test func aFailedFileIsCutOutOfAvroParts() throws {
        let dir = TempDir()
        let (good1, bad, good2) = Self.cutFixture(dir)
        let splitter = try MappingSplitter(mapping: Self.mapping, outDir: dir.file("batch"), avroFor: ["orders", "items"])
        try splitter.add(file: good1, sourceName: "a.json")
        #expect(throws: SluiceError.self) { try splitter.add(file: bad, sourceName: "bad.json") }
        try splitter.add(file: good2, sourceName: "c.json")
        let parts = try splitter.finish()
        #expect(parts.map(\.rows) == [3, 5])
        for (t, part) in parts.enumerated() {
            let expected = try Self.fields([Self.records[0], Self.records[1]], target: t, source: "a.json") + Self.fields([Self.records[3]], target: t, source: "c.json")
            #expect(try Self.fastavro(part.path).rows == expected)
        }
    }

    /// An Avro part of strings reads into a typed schema exactly as the same fields in CSV:
    /// the same values, ops, and rejects with their reasons and fields.
    @Test func avroTextPartsReadLikeTheSameCSV() throws {
        let dir = TempDir()
        let names = ["id", "amount", "day", "doc", "note", "op"]
        let rows: [[String?]] = [
            ["1", "10.50", "2026-11-30", #"{"a":1}"#, "plain", nil],
            ["2", "x", "2026-11-30", nil, "", "U"],       // a bad decimal: rejected
            ["3", "1.25", nil, "[1,2]", "a, \"quoted\"\nline", "D"],
            ["4", "2", "2026-02-30", "{", "é", "?"],      // bad date, bad JSON, bad op
            [nil, "3", "2026-01-01", "null", nil, "i"],    // NULL key: rejected
        ]
        var avro = try #require(AvroTextWriter(fieldNames: names))
        var csv = CSVWriter()
        csv.writeRecord(names)
        for r in rows {
            for v in r { if let v { v.utf8CString.dropLast().withUnsafeBytes { avro.append($0) } } else { avro.appendNull() } }
            avro.endRecord()
            csv.writeRecord(r)
        }
        let avroPath = dir.file("p.avro"), csvPath = dir.file("p.csv")
        FileManager.default.createFile(atPath: avroPath, contents: Data(avro.header + avro.flush()))
        FileManager.default.createFile(atPath: csvPath, contents: Data(csv.output))
        let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "amount", type: .decimal(precision: 8, scale: 2)),
                                           ColumnSchema(name: "day", type: .date), ColumnSchema(name: "doc", type: .json), ColumnSchema(name: "note", type: .text)],
                                 primaryKey: ["id"]).normalized()
        func read(_ path: String, _ format: SourceFormat) throws -> DecodedBatch {
            let reader = try InputFile.inspect(path: path, format: format).reader(spec: ReadSpec(schema: schema, opField: "op", fileName: path), dialect: CSVDialect())
            return try #require(try reader.next())
        }
        let (a, c) = (try read(avroPath, .avro), try read(csvPath, .csv))
        #expect(a.batch.count == 2 && a.batch.count == c.batch.count)
        #expect((0..<a.batch.count).map { a.batch.row($0) } == (0..<c.batch.count).map { c.batch.row($0) })
        #expect(a.batch.ops == c.batch.ops && a.batch.lines.map { $0 + 1 } == c.batch.lines)
        #expect(a.rejects.map(\.line) == [2, 4, 5])  // record ordinals (CSV's are physical lines: row 3 spans two)
        #expect(a.rejects.map(\.message) == c.rejects.map(\.message))
        #expect(a.rejects.map(\.fields) == c.rejects.map(\.fields))
    }

    @Test func ndjsonPartsCarryTheSameValues() throws {
        let dir = TempDir()
        let file = dir.write("in.json", Self.records.joined(separator: "\n"))
        let parts = try MappingSplitter.split(file: file, mapping: Self.mapping, sourceName: "in.json", outDir: dir.file("p"), ndjsonFor: ["items"])
        #expect(parts[1].format == .ndjson)
        var expected: [String] = []
        for (n, text) in Self.records.enumerated() {
            expected += Self.mapping.rows(try JSONParser.parse(text), line: Int64(n + 1), sourceName: "in.json")[1].map(\.text)
        }
        #expect(try String(contentsOfFile: parts[1].path, encoding: .utf8) == expected.map { $0 + "\n" }.joined())
    }
}
