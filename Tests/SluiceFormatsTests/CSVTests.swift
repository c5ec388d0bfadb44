import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceFormats

/// Decodes `text` with the given chunk size and returns (line, fields) per record.
func decode(_ text: String, _ dialect: CSVDialect = CSVDialect(header: false), chunk: Int = 1 << 20,
            maxRecord: Int = 1 << 20) throws -> [(Int64, [String?])] {
    let d = CSVDecoder(source: MemoryChunkReader(text, chunkSize: chunk), dialect: dialect, maxRecordBytes: maxRecord, readChunk: max(chunk, 16))
    var out: [(Int64, [String?])] = []
    while true {
        switch try d.next() {
        case .end: return out
        case .record: out.append((d.line, d.fieldStrings()))
        case .tooLong(let n): out.append((d.line, ["<too long: \(n)>"]))
        }
    }
}

func fixture(_ name: String) -> String {
    Bundle.module.path(forResource: "Fixtures/" + name, ofType: nil)!
}

@Suite struct CSVDecoderTests {
    @Test func quotingPerRFC4180() throws {
        let text = "a,\"b,c\",\"say \"\"hi\"\"\"\n\"multi\nline\",x,\"\"\nlast,,z"
        let recs = try decode(text)
        #expect(recs.map(\.1) == [["a", "b,c", "say \"hi\""], ["multi\nline", "x", ""], ["last", nil, "z"]])
        #expect(recs.map(\.0) == [1, 2, 4])  // line numbers count the newline inside quotes
    }

    @Test func lineEndings() throws {
        #expect(try decode("a,b\r\nc,d\re,f\ng,h").map(\.1) == [["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]])
        #expect(try decode("a,b\r\n\r\n\nc,d\r\n").map(\.0) == [1, 4])  // blank lines skipped, still counted
    }

    @Test func quotesOnlyOpenAtFieldStart() throws {
        #expect(try decode("\"ab\"c,a\"b,x\"\n").map(\.1) == [["abc", "a\"b", "x\""]])
    }

    @Test func nullToken() throws {
        var d = CSVDialect(header: false)
        d.nullToken = "NULL"
        #expect(try decode("NULL,\"NULL\",,x\n", d).map(\.1) == [[nil, "NULL", "", "x"]])
        #expect(try decode(",\"\"\n").map(\.1) == [[nil, ""]])
    }

    @Test func otherDelimiterAndQuote() throws {
        let d = CSVDialect(delimiter: UInt8(ascii: "\t"), quote: UInt8(ascii: "'"), header: false)
        #expect(try decode("a\t'b\tc'\t'it''s'\n", d).map(\.1) == [["a", "b\tc", "it's"]])
    }

    @Test func everyChunkSplitGivesTheSameRecords() throws {
        let text = "\u{FEFF}id,v\r\n1,\"a\r\nb\"\"\"\r\n2,\"\"\r\n\r\n3,\"x,y\"\r\n4,ção\r"
        let whole = try decode(text)
        #expect(whole.map(\.1) == [["id", "v"], ["1", "a\r\nb\""], ["2", ""], ["3", "x,y"], ["4", "ção"]])
        for chunk in 1...17 {
            let split = try decode(text, chunk: chunk)
            #expect(split.map(\.1) == whole.map(\.1), "chunk \(chunk)")
            #expect(split.map(\.0) == whole.map(\.0), "chunk \(chunk)")
        }
    }

    @Test func unterminatedQuoteIsAFileErrorNamingItsLine() throws {
        let e = #expect(throws: SluiceError.self) { try decode("a,b\nc,\"open\nmore\nstill\n", chunk: 3) }
        #expect(e?.code == .unterminatedQuote)
        #expect(e?.location?.line == 2)
    }

    @Test func overlongRecordIsSkippedAndReadingContinues() throws {
        let long = String(repeating: "x", count: 300)
        let text = "ok,1\n\(long),\"q\n\(long)\"\nafter,2\n"
        for chunk in [7, 64, 1000] {
            let recs = try decode(text, chunk: chunk, maxRecord: 100)
            #expect(recs.count == 3, "chunk \(chunk)")
            #expect(recs[0].1 == ["ok", "1"])
            #expect(recs[1].0 == 2)
            #expect(recs[1].1.first??.hasPrefix("<too long") == true)
            #expect(recs[2].0 == 4 && recs[2].1 == ["after", "2"])
        }
    }

    @Test func bomCRLFAndSemicolonFixture() throws {
        var d = CSVDialect(delimiter: UInt8(ascii: ";"))
        d.nullToken = "NULL"
        let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "name", type: .text),
                                           ColumnSchema(name: "note", type: .text)])
        let r = try CSVBatchReader(source: try FileSource(fixture("bom_crlf_semicolon.csv")), dialect: d, spec: ReadSpec(schema: schema))
        let b = try #require(try r.next())
        #expect(b.rejects.isEmpty)
        #expect(b.batch.lines == [2, 4, 5])
        #expect(b.batch.row(0) == [.int64(1), .text("Ana; Maria"), .text("said \"hi\"\r\nthen left")])
        #expect(b.batch.row(1) == [.int64(2), .text("Bo"), .null])
        #expect(b.batch.row(2) == [.int64(3), .text("NULL"), .text("")])  // with null: NULL, empty is text
    }
}

/// A whole file in memory as a source, for fixtures.
func FileSource(_ path: String) throws -> MemoryChunkReader {
    MemoryChunkReader(Array(FileManager.default.contents(atPath: path)!), chunkSize: 5)
}

@Suite struct CSVBatchReaderTests {
    let schema = TableSchema(columns: [
        ColumnSchema(name: "id", type: .int64, nullable: false),
        ColumnSchema(name: "valor", type: .float64),
        ColumnSchema(name: "when", type: .date, source: "Day"),
    ], primaryKey: ["id"])

    func read(_ text: String, batchRows: Int = 100, op: String? = nil) throws -> (CSVBatchReader, [DecodedBatch]) {
        let r = try CSVBatchReader(source: MemoryChunkReader(text, chunkSize: 4), dialect: CSVDialect(),
                                   spec: ReadSpec(schema: schema, opField: op, limits: ReadLimits(batchRows: batchRows), fileName: "f.csv"))
        var out: [DecodedBatch] = []
        while let b = try r.next() { out.append(b) }
        return (r, out)
    }

    @Test func mapsHeaderNamesAndRejectsBadRows() throws {
        let text = "ID,extra,valor,day\n1,a,1.5,2024-01-02\n2,b,abc,2024-01-02\n3,c\n4,\u{FF}x,2,2024-13-01\n5,e,,\n"
        let (r, batches) = try read(text)
        #expect(r.unusedFields == ["extra"])
        let rows = batches.flatMap { b in (0..<b.batch.count).map { b.batch.row($0) } }
        #expect(rows == [[.int64(1), .float64(1.5), .date(days: 19724)], [.int64(5), .null, .null]])
        let rejects = batches.flatMap(\.rejects)
        #expect(rejects.map(\.line) == [3, 4, 5])
        #expect(rejects[0].message == "column 'valor': invalid float64 value 'abc'")
        #expect(rejects[0].fields == ["2", "b", "abc", "2024-01-02"])
        #expect(rejects[1].message == "expected 4 fields, found 2")
        #expect(rejects[2].message == "column 'when': invalid date value '2024-13-01'")
    }

    @Test func invalidUTF8InATextColumnIsARejectedRow() throws {
        let s = TableSchema(columns: [ColumnSchema(name: "t", type: .text)])
        let bytes = Array("t\nok\n".utf8) + [0xC3, 0x28, 0x0A] + Array("fine\n".utf8)
        let r = try CSVBatchReader(source: MemoryChunkReader(bytes), dialect: CSVDialect(), spec: ReadSpec(schema: s))
        let b = try #require(try r.next())
        #expect(b.batch.count == 2)
        #expect(b.rejects.map(\.line) == [3])
        #expect(b.rejects.first?.reason == "invalid UTF-8")
    }

    @Test func missingColumnsAreAFileError() {
        let e = #expect(throws: SluiceError.self) { try read("id,valor\n1,2\n") }
        #expect(e?.description.contains("when (from 'Day')") == true)
    }

    @Test func batchesAreBoundedAndLinesKept() throws {
        var text = "id,valor,day\n"
        for i in 0..<1000 { text += "\(i),\(i).5,\n" }
        let (_, batches) = try read(text, batchRows: 64)
        #expect(batches.count == 16)
        #expect(batches.allSatisfy { $0.batch.count <= 64 })
        #expect(batches.last?.batch.lines.last == 1001)
    }

    @Test func opColumn() throws {
        let (_, batches) = try read("id,valor,day,op\n1,1,,U\n2,,,D\n3,1,,X\n", op: "op")
        #expect(batches[0].batch.ops == [.upsert, .delete])
        #expect(batches[0].rejects.first?.message == "column 'op': unknown op 'X' (use I, U or D)")
    }

    @Test func headerlessFilesMapByPosition() throws {
        let s = TableSchema(columns: [ColumnSchema(name: "a", type: .int64), ColumnSchema(name: "b", type: .text, source: "3")])
        let r = try CSVBatchReader(source: MemoryChunkReader("1,x,y\n2,z,w\n"), dialect: CSVDialect(header: false), spec: ReadSpec(schema: s))
        let b = try #require(try r.next())
        #expect(b.batch.row(0) == [.int64(1), .text("y")])
        #expect(b.batch.row(1) == [.int64(2), .text("w")])
    }
}

@Suite struct GzipTests {
    @Test func readsGzipFixture() throws {
        let raw = try FileSource(fixture("cities.csv.gz"))
        let s = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "city", type: .text)])
        let r = try CSVBatchReader(source: try GzipChunkReader(raw, inputChunk: 7), dialect: CSVDialect(), spec: ReadSpec(schema: s))
        let b = try #require(try r.next())
        #expect(b.batch.row(1) == [.int64(2), .text("São Paulo")])
    }

    @Test func concatenatedMembersAndTruncation() throws {
        let gz = Array(FileManager.default.contents(atPath: fixture("cities.csv.gz"))!)
        var twice = try GzipChunkReader(MemoryChunkReader(gz + gz, chunkSize: 9))
        var out: [UInt8] = []
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 5, alignment: 1)
        defer { buf.deallocate() }
        while case let n = try twice.read(into: buf), n > 0 { out += buf[0..<n] }
        let one = "id,city\n1,Recife\n2,\"São Paulo\"\n"
        #expect(String(decoding: out, as: UTF8.self) == one + one)
        var cut = try GzipChunkReader(MemoryChunkReader(Array(gz.prefix(gz.count - 6))))
        #expect(throws: SluiceError.self) { while try cut.read(into: buf) > 0 {} }
        var junk = try GzipChunkReader(MemoryChunkReader(Array("plain text, not gzip".utf8)))
        #expect(throws: SluiceError.self) { while try junk.read(into: buf) > 0 {} }
    }
}
