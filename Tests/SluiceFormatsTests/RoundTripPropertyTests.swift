import Testing
import PropertyBased
@testable import SluiceCore
@testable import SluiceFormats
import SluiceTesting

/// Property: any table, written as CSV by ``CSVWriter`` and read back by ``CSVBatchReader``
/// (split into random chunks), gives back exactly the same typed values.
@Suite struct RoundTripPropertyTests {
    static let types: [ColumnType] = [.int64, .float64, .decimal(precision: 20, scale: 4), .bool, .text, .date, .timestamp,
                                      .timestamptz, .time, .uuid, .json, .bytes]
    static let tricky = ["", " ", "a,b", "\"", "\"\"", "line\nbreak", "cr\r", "crlf\r\n", "ção", "日本", "😀", "NULL", "\\N", ",", " lead", "trail "]

    static func randomValue(_ t: ColumnType, _ rng: inout SplitMix) -> Value {
        if rng.next() % 6 == 0 { return .null }
        switch t {
        case .int64: return .int64(Int64(bitPattern: rng.next()) >> (rng.next() % 64))
        case .float64:
            var d: Double
            repeat { d = Double(bitPattern: rng.next()) } while !d.isFinite
            return .float64(rng.next() % 2 == 0 ? d : Double(Int64(bitPattern: rng.next()) % 100_000) / 100)
        case .decimal: return .decimal(ExactDecimal(significand: Int128(Int64(bitPattern: rng.next()) % 1_000_000_000_000_000), scale: 4))
        case .bool: return .bool(rng.next() % 2 == 0)
        case .date: return .date(days: Int64(rng.next() % 2_900_000) - 700_000)
        case .timestamp: return .timestamp(micros: Int64(rng.next() % 250_000_000_000_000_000) - 60_000_000_000_000_000)
        case .timestamptz: return .timestamptz(micros: Int64(rng.next() % 250_000_000_000_000_000) - 60_000_000_000_000_000)
        case .time: return .time(micros: Int64(rng.next() % 86_400_000_000))
        case .uuid: return .uuid((0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        case .bytes: return .bytes((0..<Int(rng.next() % 12)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        case .json:
            let v = JSONValue.object([JSONMember(key: randomText(&rng), value: .array([.number(String(rng.next() % 1000)), .string(randomText(&rng)), .null]))])
            return .json(v.text)
        case .text: return .text(randomText(&rng))
        }
    }

    static func randomText(_ rng: inout SplitMix) -> String {
        (0..<Int(rng.next() % 4)).map { _ in tricky[Int(rng.next() % UInt64(tricky.count))] }.joined()
    }

    @Test func csvWriteThenReadIsIdentity() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max)) { seed in
            var rng = SplitMix(seed: UInt64(seed))
            let ncols = 1 + Int(rng.next() % 6)
            let columns = (0..<ncols).map { i in ColumnSchema(name: "c\(i)", type: Self.types[Int(rng.next() % UInt64(Self.types.count))]) }
            let schema = TableSchema(columns: columns)
            let rows = (0..<Int(rng.next() % 40)).map { _ in columns.map { Self.randomValue($0.type, &rng) } }
            var writer = CSVWriter()
            writer.writeRecord(columns.map(\.name))
            var batch = RecordBatch(fields: schema.fields)
            for row in rows {
                for (c, v) in row.enumerated() { batch.columns[c].appendValue(v) }
                batch.lines.append(0)
                batch.ops.append(.upsert)
            }
            for r in 0..<batch.count { writer.writeRow(batch, r) }
            let chunk = 1 + Int(rng.next() % 50)
            do {
                let reader = try CSVBatchReader(source: MemoryChunkReader(writer.output, chunkSize: chunk), dialect: CSVDialect(),
                                                spec: ReadSpec(schema: schema, limits: ReadLimits(batchRows: 7)))
                var back: [[Value]] = []
                while let b = try reader.next() {
                    #expect(b.rejects.isEmpty, "\(b.rejects)")
                    back += (0..<b.batch.count).map { b.batch.row($0) }
                }
                #expect(back == rows, "seed \(seed)")
            } catch {
                Issue.record("seed \(seed): \(error)")
            }
        }
    }
}


extension Column {
    /// Appends a ``Value`` (test helper; real readers append typed values directly).
    mutating func appendValue(_ v: Value) {
        switch v {
        case .null: appendNull()
        case .int64(let x), .date(let x), .timestamp(let x), .timestamptz(let x), .time(let x): append(int: x)
        case .bool(let b): append(int: b ? 1 : 0)
        case .float64(let d): append(double: d)
        case .decimal(let d): append(decimal: d)
        case .text(let s), .json(let s): append(bytes: Array(s.utf8))
        case .uuid(let b), .bytes(let b): append(bytes: b)
        }
    }
}
