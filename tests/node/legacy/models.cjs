// The Node.js service's Mongoose models, as the seed document describes them
// (../shared/seed: "Database Schema"; Customer and User are the main app's,
// with the fields the seed's JSON examples show). Test material: the tests
// write a database with these models the way the Node service does, and read
// back what OmniBiz writes with them, validation included.
const mongoose = require("mongoose");
const { Schema } = mongoose;
const { ObjectId } = Schema.Types;

const userSchema = new Schema(
  {
    name: { type: String, required: true },
    email: { type: String, required: true },
    phone: String,
    role: { type: String, enum: ["business_owner", "admin"], default: "business_owner" },
    businessName: String,
  },
  { timestamps: true },
);

const customerSchema = new Schema(
  {
    name: { type: String, required: true },
    email: { type: String, required: true },
    phone: String,
    invitedBy: { type: ObjectId, ref: "User", required: true },
    totalOrders: { type: Number, default: 0 },
    totalSpent: { type: Number, default: 0 },
    lastLogin: Date,
  },
  { timestamps: true },
);

const conversationSchema = new Schema(
  {
    businessOwnerId: { type: ObjectId, ref: "User", required: true },
    customerId: { type: ObjectId, ref: "Customer", required: true },
    businessOwnerName: String,
    customerName: String,
    customerEmail: String,
    customerPhone: String,
    lastMessage: {
      content: String,
      senderId: ObjectId,
      timestamp: Date,
    },
    unreadCount: {
      businessOwner: { type: Number, default: 0 },
      customer: { type: Number, default: 0 },
    },
    status: { type: String, enum: ["active", "archived", "blocked"], default: "active" },
    tags: [String],
    priority: { type: String, enum: ["low", "normal", "high", "urgent"], default: "normal" },
  },
  { timestamps: true },
);

const messageSchema = new Schema(
  {
    conversationId: { type: ObjectId, ref: "Conversation", required: true, index: true },
    senderId: { type: ObjectId, required: true, refPath: "senderModel", index: true },
    senderModel: { type: String, required: true, enum: ["User", "Customer"] },
    senderName: { type: String, required: true },
    senderRole: { type: String, required: true, enum: ["business_owner", "customer", "admin"] },
    content: { type: String, required: true, maxlength: 5000 },
    attachments: [
      {
        url: String,
        type: { type: String },
        name: String,
        size: Number,
      },
    ],
    status: { type: String, enum: ["sent", "delivered", "read", "failed"], default: "sent" },
    readBy: [
      {
        userId: ObjectId,
        readAt: Date,
      },
    ],
    isDeleted: { type: Boolean, default: false },
  },
  { timestamps: true },
);

module.exports = {
  mongoose,
  User: mongoose.model("User", userSchema),
  Customer: mongoose.model("Customer", customerSchema),
  Conversation: mongoose.model("Conversation", conversationSchema),
  Message: mongoose.model("Message", messageSchema),
};
