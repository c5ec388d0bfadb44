import SluiceCore

/// Rebuilds nested values (structs, LIST, MAP, repeated fields) from the repetition and
/// definition levels of their leaf columns, as JSON text: structs become objects, lists
/// arrays, maps objects keyed by the key's text. Each call writes one row of one field.
struct ParquetNestedAssembler {
    let readers: [Int: ParquetColumnReader]
    let fileName: String?

    init(readers: [Int: ParquetColumnReader], fileName: String?) {
        self.readers = readers
        self.fileName = fileName
    }

    func fail(_ node: ParquetSchema.Node, _ m: String) -> SluiceError {
        SluiceError(.malformedFile, "column '\(node.path.joined(separator: "."))': \(m)", at: SourceLocation(file: fileName))
    }

    /// The reader of the first leaf below `node` (all leaves below share its upper levels).
    func first(_ node: ParquetSchema.Node) -> ParquetColumnReader {
        var n = node
        while n.leafIndex == nil { n = n.children[0] }
        return readers[n.leafIndex!]!
    }

    func peek(_ node: ParquetSchema.Node) throws(SluiceError) -> (rep: Int32, def: Int32) {
        guard let l = try first(node).peek() else { throw fail(node, "the column ends before its row group does") }
        return l
    }

    /// Consumes the one entry every leaf below `node` has for a NULL or empty value.
    func skip(_ node: ParquetSchema.Node) throws(SluiceError) {
        if let i = node.leafIndex {
            let r = readers[i]!
            guard try r.peek() != nil else { throw fail(node, "the column ends before its row group does") }
            r.advance()
            return
        }
        for c in node.children { try skip(c) }
    }

    /// Writes one row of the top-level field `node`.
    mutating func writeRow(_ node: ParquetSchema.Node, into out: inout [UInt8]) throws(SluiceError) {
        guard try peek(node).rep == 0 else { throw fail(node, "a row starts with a repetition level above 0") }
        try write(node, into: &out)
    }

    mutating func write(_ node: ParquetSchema.Node, into out: inout [UInt8]) throws(SluiceError) {
        switch node.repetition {
        case .repeated:
            try writeList(repeated: node, element: node, into: &out)
        case .optional:
            if try peek(node).def < Int32(node.maxDef) {
                try skip(node)
                out.append(contentsOf: "null".utf8)
            } else {
                try writePresent(node, into: &out)
            }
        case .required:
            try writePresent(node, into: &out)
        }
    }

    /// Writes a node known to be present (its own definition level is reached).
    mutating func writePresent(_ node: ParquetSchema.Node, into out: inout [UInt8]) throws(SluiceError) {
        if let i = node.leafIndex {
            let r = readers[i]!
            guard try r.peek() != nil else { throw fail(node, "the column ends before its row group does") }
            r.advance(writing: &out)
            return
        }
        guard !node.children.isEmpty else { throw fail(node, "a group without fields") }
        let e = node.element
        let isList = e.logicalType == .list || e.convertedType == .list
        let isMap = e.logicalType == .map || e.convertedType == .map || e.convertedType == .mapKeyValue
        if isList, node.children.count == 1, node.children[0].repetition == .repeated {
            let rep = node.children[0]
            try writeList(repeated: rep, element: Self.listElement(list: node, repeated: rep), into: &out)
        } else if isMap, node.children.count == 1, node.children[0].repetition == .repeated, node.children[0].children.count == 2 {
            try writeMap(node.children[0], into: &out)
        } else {
            out.append(UInt8(ascii: "{"))
            for (k, child) in node.children.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(bytes: child.name.utf8, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(child, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// The element of a LIST: the repeated node's one child in the standard 3-level layout,
    /// or the repeated node itself in the legacy 2-level layouts the spec keeps readable.
    static func listElement(list: ParquetSchema.Node, repeated: ParquetSchema.Node) -> ParquetSchema.Node {
        if repeated.isLeaf || repeated.children.count != 1 { return repeated }
        if repeated.name == "array" || repeated.name == list.name + "_tuple" { return repeated }
        return repeated.children[0]
    }

    /// Writes the elements of one instance of the repeated node `rep` as a JSON array.
    mutating func writeList(repeated rep: ParquetSchema.Node, element: ParquetSchema.Node, into out: inout [UInt8]) throws(SluiceError) {
        if try peek(rep).def < Int32(rep.maxDef) {
            try skip(rep)
            out.append(contentsOf: "[]".utf8)
            return
        }
        out.append(UInt8(ascii: "["))
        var firstElement = true
        while true {
            if !firstElement { out.append(UInt8(ascii: ",")) }
            firstElement = false
            if element === rep { try writePresent(rep, into: &out) } else { try write(element, into: &out) }
            guard let next = try first(rep).peek(), next.rep == Int32(rep.maxRep) else { break }
        }
        out.append(UInt8(ascii: "]"))
    }

    /// Writes one map instance as a JSON object; keys are written as strings.
    mutating func writeMap(_ kv: ParquetSchema.Node, into out: inout [UInt8]) throws(SluiceError) {
        if try peek(kv).def < Int32(kv.maxDef) {
            try skip(kv)
            out.append(contentsOf: "{}".utf8)
            return
        }
        out.append(UInt8(ascii: "{"))
        var firstEntry = true
        while true {
            if !firstEntry { out.append(UInt8(ascii: ",")) }
            firstEntry = false
            var key: [UInt8] = []
            try write(kv.children[0], into: &key)
            if key.first == UInt8(ascii: "\"") { out.append(contentsOf: key) } else { JSONValue.writeString(bytes: key, into: &out) }
            out.append(UInt8(ascii: ":"))
            try write(kv.children[1], into: &out)
            guard let next = try first(kv).peek(), next.rep == Int32(kv.maxRep) else { break }
        }
        out.append(UInt8(ascii: "}"))
    }
}
