"""tiktok"""
