#include "jobs/xml_doc.h"

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include <mutex>

namespace pampa {
namespace {

// Descriptors are small; anything larger is not one.
constexpr size_t kMaxXml = 16 << 20;

std::string Trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

}  // namespace

Result<XmlDoc> ParseXml(std::string_view text, const std::string& what) {
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });
  if (text.size() > kMaxXml) {
    return Status::Invalid(what + " is " + std::to_string(text.size()) + " bytes, more than a descriptor can be (" +
                           std::to_string(kMaxXml) + ")");
  }
  xmlResetLastError();
  // Without XML_PARSE_NOENT entities stay unexpanded and no external DTD or
  // entity is loaded; NONET forbids the network in any case.
  XmlDoc doc(xmlReadMemory(text.data(), static_cast<int>(text.size()), nullptr, nullptr,
                           XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA));
  if (!doc || !xmlDocGetRootElement(doc.get())) {
    const xmlError* e = xmlGetLastError();
    std::string why = e && e->message ? Trim(e->message) : "not XML";
    if (e && e->line > 0) why = "line " + std::to_string(e->line) + ": " + why;
    return Status::Invalid(what + " is not valid XML (" + why + ")");
  }
  return doc;
}

std::string_view LocalName(const xmlNode* n) {
  return n && n->name ? std::string_view(reinterpret_cast<const char*>(n->name)) : std::string_view();
}

std::vector<xmlNode*> Children(const xmlNode* n, std::string_view name) {
  std::vector<xmlNode*> out;
  if (!n) return out;
  for (xmlNode* c = n->children; c; c = c->next) {
    if (c->type == XML_ELEMENT_NODE && (name.empty() || LocalName(c) == name)) out.push_back(c);
  }
  return out;
}

xmlNode* Child(const xmlNode* n, std::string_view name) {
  if (!n) return nullptr;
  for (xmlNode* c = n->children; c; c = c->next) {
    if (c->type == XML_ELEMENT_NODE && LocalName(c) == name) return c;
  }
  return nullptr;
}

std::vector<xmlNode*> Descendants(const xmlNode* n, std::string_view name) {
  std::vector<xmlNode*> out;
  for (xmlNode* c : Children(n)) {
    if (LocalName(c) == name) out.push_back(c);
    auto below = Descendants(c, name);
    out.insert(out.end(), below.begin(), below.end());
  }
  return out;
}

std::string Attr(const xmlNode* n, std::string_view name) {
  if (!n) return "";
  for (xmlAttr* a = n->properties; a; a = a->next) {
    if (!a->name || std::string_view(reinterpret_cast<const char*>(a->name)) != name) continue;
    xmlChar* v = xmlNodeListGetString(n->doc, a->children, 1);
    std::string out = v ? reinterpret_cast<const char*>(v) : "";
    xmlFree(v);
    return out;
  }
  return "";
}

std::string Text(const xmlNode* n) {
  if (!n) return "";
  xmlChar* v = xmlNodeGetContent(n);
  std::string out = v ? reinterpret_cast<const char*>(v) : "";
  xmlFree(v);
  return Trim(out);
}

}  // namespace pampa
