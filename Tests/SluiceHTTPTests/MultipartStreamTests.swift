import Testing
@testable import SluiceHTTP

@Suite struct MultipartStreamTests {
    /// Parses `body` fed in chunks of `size`; returns (headers, body) per part.
    func parse(_ body: [UInt8], boundary: String, chunk size: Int) throws -> (parts: [([String: String], [UInt8])], finished: Bool) {
        var p = MultipartStream(boundary: boundary)
        var parts: [([String: String], [UInt8])] = []
        var i = 0
        while i < body.count {
            let end = min(body.count, i + size)
            try body[i..<end].withUnsafeBytes { chunk in
                try p.feed(chunk) { e in
                    switch e {
                    case .headers(let h): parts.append((h, []))
                    case .body(let b): parts[parts.count - 1].1 += b
                    case .partEnd: break
                    }
                }
            }
            i = end
        }
        return (parts, p.finished)
    }

    @Test func partsSurviveEverySplit() throws {
        let file = "id,v\r\n1,--XYZ not after CRLF\r\n--XY-almost\r\n\r\n\r\n--X\r\n2,\"b\"\r"
        let text = "preamble to ignore\r\n--XYZ\r\nContent-Disposition: form-data; name=\"mode\"\r\n\r\nmerge\r\n"
            + "--XYZ  \r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\n\(file)\r\n"
            + "--XYZ\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--XYZ--\r\nepilogue"
        let body = Array(text.utf8)
        let whole = try parse(body, boundary: "XYZ", chunk: body.count)
        #expect(whole.finished)
        #expect(whole.parts.count == 3)
        #expect(String(decoding: whole.parts[0].1, as: UTF8.self) == "merge")
        #expect(whole.parts[1].0["content-disposition"] == "form-data; name=\"file\"; filename=\"a.csv\"")
        #expect(String(decoding: whole.parts[1].1, as: UTF8.self) == file)
        #expect(whole.parts[2].1.isEmpty)
        for size in 1...40 {
            let split = try parse(body, boundary: "XYZ", chunk: size)
            #expect(split.finished, "chunk \(size)")
            #expect(split.parts.map(\.1) == whole.parts.map(\.1), "chunk \(size)")
            #expect(split.parts.map(\.0) == whole.parts.map(\.0), "chunk \(size)")
        }
    }

    @Test func truncatedBodiesAreNotFinished() throws {
        let body = Array("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nabc\r\n--B".utf8)
        #expect(try parse(body, boundary: "B", chunk: 7).finished == false)
        #expect(throws: MultipartStream.ParseError.self) { try parse(Array("--B\r\nxx\r\n\r\nq\r\n--Bjunk".utf8), boundary: "B", chunk: 100) }
    }

    @Test func contentDisposition() {
        let d = ContentDisposition("form-data; name=\"file\"; filename=\"a \\\"q\\\".csv\"")
        #expect(d.name == "file" && d.fileName == "a \"q\".csv")
        #expect(ContentDisposition("form-data; name=file; filename*=UTF-8''%C3%A7.csv").fileName == "ç.csv")
        #expect(multipartBoundary("multipart/form-data; boundary=\"abc def\"") == "abc def")
        #expect(multipartBoundary("text/csv") == nil)
    }
}
