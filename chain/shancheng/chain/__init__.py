"""shancheng.chain"""
